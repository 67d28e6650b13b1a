"""RAUC's D-Bus policy as the image ships it: root changes the slots; the tillbox group
(the kiosk, the sync agent) may only read their state."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

POLICY = Path(__file__).resolve().parents[2] / "systemd" / "rauc-dbus.conf"
READ_ONLY = {
    ("org.freedesktop.DBus.Properties", "Get"),
    ("org.freedesktop.DBus.Properties", "GetAll"),
    ("org.freedesktop.DBus.Introspectable", None),
    ("org.freedesktop.DBus.Peer", None),
    ("de.pengutronix.rauc.Installer", "GetSlotStatus"),
    ("de.pengutronix.rauc.Installer", "GetPrimary"),
}


def policies() -> dict[str, list[ET.Element]]:
    root = ET.parse(POLICY).getroot()
    return {f"{k}={v}": list(p) for p in root.findall("policy") for k, v in p.attrib.items()}


def test_only_root_owns_and_changes_rauc():
    found = policies()
    assert set(found) == {"user=root", "group=tillbox"}
    owners = [k for k, rules in found.items() for r in rules if "own" in r.attrib]
    assert owners == ["user=root"]


def test_the_tillbox_group_may_only_read_the_slots():
    rules = policies()["group=tillbox"]
    assert rules, "the kiosk and the agent could not say what the till runs"
    for rule in rules:
        assert rule.tag == "allow" and rule.get("send_destination") == "de.pengutronix.rauc"
        # every allow names an interface, and a member unless the interface only reads:
        # no Install, InstallBundle, Mark or Properties.Set
        key = (rule.get("send_interface"), rule.get("send_member"))
        assert key in READ_ONLY, f"the tillbox group may call {key}"
        assert set(rule.attrib) <= {"send_destination", "send_interface", "send_member"}
