"""Plugins (``tillbox.commands`` entry points) are isolated: one broken or clashing plugin
is reported in one line and every other command keeps working."""

from __future__ import annotations

import argparse
import io
from importlib.metadata import entry_points

import pytest

from appliance import cli, plugins


class FakeEntry:
    def __init__(self, name: str, load) -> None:
        self.name, self.value, self._load = name, f"fake_{name}:register", load

    def load(self):
        return self._load()


def _broken_import():
    raise ImportError("No module named 'picamera2'")


def _registers(*names: str, then_fail: bool = False):
    def register(sub) -> None:
        for name in names:
            p = sub.add_parser(name, help=f"{name} from a plugin")
            p.set_defaults(handler=lambda args, n=name: print(f"plugin {n}") or 0)
        if then_fail:
            raise RuntimeError("half-way")

    return lambda: register


def _real_plus(*extra: FakeEntry) -> list:
    return [*entry_points(group=plugins.GROUP), *extra]


@pytest.fixture
def with_plugins(monkeypatch):
    def install(*extra: FakeEntry) -> None:
        entries = _real_plus(*extra)
        monkeypatch.setattr(
            plugins,
            "entry_points",
            lambda group: entries if group == plugins.GROUP else entry_points(group=group),
        )

    return install


def test_broken_plugin_does_not_stop_the_core(with_plugins, tmp_path, capsys):
    with_plugins(FakeEntry("camera2", _broken_import))
    assert cli.main(["init", "--data-dir", str(tmp_path / "t"), "--device-id", "t1", "--demo"]) == 0
    assert cli.main(["catalog", "list", "--data-dir", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    warnings = [line for line in err if "camera2" in line]
    assert len(warnings) == 2  # once per start, one line each
    assert "failed to load (ImportError: No module named 'picamera2')" in warnings[0]


def test_other_plugins_still_load_after_a_broken_one(with_plugins, capsys):
    with_plugins(FakeEntry("aaa-broken", _broken_import))
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for group in ("hw", "sync", "edge", "kiosk", "inspect"):
        assert group in sub.choices, group


def test_a_plugin_may_not_take_a_core_command(with_plugins, capsys):
    with_plugins(FakeEntry("evil", _registers("evilcmd", "sale")))
    parser = cli.build_parser()
    err = capsys.readouterr().err
    assert "plugin evil" in err and "refused: command 'sale' already exists" in err
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    # Refused whole: neither its clashing nor its other command is there.
    assert "evilcmd" not in sub.choices
    assert "evilcmd" not in [a.dest for a in sub._choices_actions]
    args = parser.parse_args(["sale", "--item", "x", "--pay", "cash"])
    assert args.handler.__module__ == "appliance.cli"


def test_two_plugins_clash_the_first_by_name_wins():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    out = io.StringIO()
    failed = plugins.load_command_plugins(
        sub,
        [FakeEntry("b-second", _registers("report")), FakeEntry("a-first", _registers("report"))],
        stderr=out,
    )
    assert failed == ["b-second"]
    assert out.getvalue().count("\n") == 1
    assert parser.parse_args(["report"]).handler(None) == 0


def test_plugin_failing_half_way_is_rolled_back():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    out = io.StringIO()
    failed = plugins.load_command_plugins(
        sub, [FakeEntry("half", _registers("one", "two", then_fail=True))], stderr=out
    )
    assert failed == ["half"]
    assert sub.choices == {}
    assert "RuntimeError: half-way" in out.getvalue()
