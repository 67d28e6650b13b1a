"""Power and earth events from the GPIO seam, recorded on the thread that owns the till.

The GPIO driver reports each change (mains lost or back, earth lost) as it happens, on
gpiozero's thread; :func:`record_gpio_reports` writes what it reported since the last
call: ``power.lost`` / ``power.restored`` (running on battery, mains back) and
``device.fault`` (earth). Only these types are accepted from the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance import events as ev

if TYPE_CHECKING:
    from appliance.devices import Gpio
    from appliance.till import Till

GPIO_EVENT_TYPES = frozenset({ev.POWER_LOST, ev.POWER_RESTORED, ev.DEVICE_FAULT})


def record_gpio_reports(till: Till, gpio: Gpio) -> int:
    """Record the GPIO changes reported since the last call; how many were recorded."""
    count = 0
    for type_, payload in gpio.take_reports():
        if type_ not in GPIO_EVENT_TYPES:
            raise ValueError(f"the GPIO driver reported {type_!r}, which is not a GPIO event")
        till.record(type_, payload)
        count += 1
    return count
