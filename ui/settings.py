"""The ``[ui]`` section of tillbox.toml (docs/ui.md), checked when it loads.

Kept apart from the kiosk's modules so loading a config never imports Kivy.
"""

from __future__ import annotations

from appliance.config import Section, Setting

SECTIONS = {
    "ui": Section(
        {
            "lang": Setting("text", "en"),
            "technician_pin_hash": Setting("text", "", secret=True),
            "usb_path": Setting("text", "/media/usb0"),
        }
    )
}
