"""The ``[selftest]`` section of tillbox.toml (docs/compliance.md), checked when it loads."""

from __future__ import annotations

from appliance.config import Section, Setting

DEFAULT_FATAL = ["log", "device_key", "disk", "clock", "power", "earth", "permits", "secrets"]

SECTIONS = {
    "selftest": Section(
        {
            "fatal": Setting("text_list", DEFAULT_FATAL),
            "min_free_mb": Setting("int", 200, min=0, max=10**12),
            "permit_warn_days": Setting("int", 14, min=0, max=3650),
        }
    )
}
