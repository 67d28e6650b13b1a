"""MQTT plumbing shared by the sync agent and the edge: connect, backoff, session, close.

Above the core, beside the drivers: it knows paho-mqtt and nothing of the till.
"""
