"""``tillbox.shift_closed`` hooks run after the close is durable; none can fail the close."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points

from appliance import plugins
from appliance.datadir import DataDir
from appliance.till import Till


class FakeEntry:
    def __init__(self, name: str, load) -> None:
        self.name, self.value, self._load = name, f"fake_{name}:hook", load

    def load(self):
        return self._load()


def _missing_module():
    raise ImportError("No module named 'escpos'")


def test_the_hw_plugin_offers_the_z_report_hook():
    assert {e.name: e.value for e in entry_points(group=plugins.SHIFT_CLOSED_GROUP)} == {
        "hw": "drivers.cli:print_z_at_close",
        "update": "drivers.update_cli:restart_at_close",  # after it: hooks run in name order
    }


def test_a_broken_or_raising_hook_is_a_result_not_an_exception(tmp_path):
    calls = []

    def good(args, till, event):
        calls.append(event.payload["shift_no"])
        return {"printed": True, "message": "Z report printed"}

    def raises(args, till, event):
        raise OSError("printer on fire")

    entries = [
        FakeEntry("b-raises", lambda: raises),
        FakeEntry("a-good", lambda: good),
        FakeEntry("c-broken", _missing_module),
    ]
    with Till.init(DataDir(tmp_path / "t"), "t1", demo=True) as till:
        till.open_shift()
        event = till.close_shift()
        results = plugins.run_shift_closed_hooks(argparse.Namespace(), till, event, entries)
        assert till.current_shift() is None
    assert calls == [1]
    assert [(r["hook"], r["printed"]) for r in results] == [
        ("a-good", True),
        ("b-raises", False),
        ("c-broken", False),
    ]
    assert "OSError: printer on fire" in results[1]["message"]
    assert "ImportError: No module named 'escpos'" in results[2]["message"]
