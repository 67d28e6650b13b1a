"""Opening the cash drawer through the printer, and recording it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance.devices import DeviceError

if TYPE_CHECKING:
    from appliance.devices import Printer
    from appliance.till import Till


def open_drawer(
    till: Till, printer: Printer, reason: str = "sale", receipt_no: int | None = None
) -> int:
    """Kick the cash drawer (``ESC p`` through the printer) and record ``drawer.opened``.

    Returns the event's seq. A failed kick records ``device.fault`` and raises
    :class:`~appliance.devices.DeviceError` so the cashier knows to open the drawer by key.
    """
    try:
        printer.kick_drawer()
        printer.status()  # a write into a dead connection "succeeds"; a question does not
    except DeviceError as exc:
        till.record(
            ev.DEVICE_FAULT,
            {"device": "drawer", "url": getattr(printer, "url", ""), "message": str(exc)},
        )
        raise DeviceError(f"cash drawer did not open ({exc}); open it with the key") from None
    payload: dict[str, Any] = {"reason": reason, "via": "printer"}
    if receipt_no is not None:
        payload["receipt_no"] = receipt_no
    return till.record(ev.DRAWER_OPENED, payload).seq
