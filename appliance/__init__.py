"""tillbox appliance core: the durable sale log and the till's business rules.

This package knows nothing of Kivy, MQTT or serial ports. The UI, the drivers,
the sync agent and the edge depend on it, never the other way round.
"""

__version__ = "0.1.0"
