"""``tillbox hw ...`` on a fresh demo till, and open_devices as the kiosk and compliance use it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.services.printing import default_qr_for, print_sale_receipt
from appliance.testing import run_cli as run
from appliance.till import Till
from drivers.devices import open_devices
from drivers.escpos_sim import Qr


@pytest.fixture
def ddir(tmp_path):
    d = DataDir(tmp_path / "till")
    with Till.init(d, "t1", demo=True) as till:
        till.open_shift()
        till.sell([CartLine("POSTCARD", 1), CartLine("BRATW", 2)], "cash", tendered=2000)
    return d


def set_hw(ddir, **urls):
    config = ddir.load_config()
    config.update("hardware", **urls)
    ddir.save_config(config)


def events(ddir, type_):
    with Till.open(ddir) as till:
        return [e for e in till.log.events(0) if e.type == type_]


def test_hw_list_json_on_a_fresh_demo_till(ddir):
    code, out, _ = run("hw", "list", "--data-dir", str(ddir.root), "--json")
    assert code == 0
    devices = json.loads(out)["devices"]
    assert [d["kind"] for d in devices] == ["printer", "engraver", "camera", "gpio"]
    assert all(d["ok"] and d["url"] == "sim://" for d in devices), devices
    assert set(devices[0]) == {"kind", "url", "ok", "message", "detail"}


def test_hw_list_shows_missing_and_unfitted_devices(ddir):
    set_hw(ddir, printer="tcp://127.0.0.1:1", engraver="serial:///dev/ttyNOPE", camera="none://")
    code, out, _ = run("hw", "list", "--data-dir", str(ddir.root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("printer   FAIL") and "refused" in lines[0]
    assert lines[1].startswith("engraver  FAIL") and "not connected" in lines[1]
    assert lines[2].startswith("camera    FAIL") and "no camera fitted" in lines[2]
    assert lines[3].startswith("gpio      ok")


def test_print_test_shows_the_simulated_paper(ddir, tmp_path):
    code, out, _ = run(
        "hw", "print-test", "--data-dir", str(ddir.root), "--preview", str(tmp_path / "t.png")
    )
    assert code == 0, out
    assert "Łódź" in out and "Brötchen" in out and "PRINTER TEST" in out
    assert Image.open(tmp_path / "t.png").size[0] == 48 * 12 + 24


def test_print_receipt_then_out_of_paper_then_reprint(ddir):
    code, out, _ = run(
        "hw", "print-receipt", "--data-dir", str(ddir.root), "--receipt", "1", "--json"
    )
    assert code == 0
    assert json.loads(out.splitlines()[0])["ok"] is True
    set_hw(ddir, printer="sim://?paper=out")
    code, out, err = run("hw", "print-receipt", "--data-dir", str(ddir.root), "--receipt", "1")
    assert code == 1
    assert err.count("\n") == 1 and "out of paper" in err and "tillbox hw reprint" in err
    code, _, err = run("hw", "reprint", "--data-dir", str(ddir.root))
    assert code == 1 and "1 still queued" in err
    set_hw(ddir, printer="sim://")
    code, out, _ = run("hw", "reprint", "--data-dir", str(ddir.root), "--json")
    assert code == 0 and json.loads(out) == {
        "printed": [1],
        "queued": [],
        "z_reports_printed": [],
        "z_queued": [],
    }
    assert [e.payload["reprint"] for e in events(ddir, "receipt.printed")] == [False, True]
    code, out, _ = run("hw", "reprint", "--data-dir", str(ddir.root))
    assert out.strip() == "nothing to reprint"


def test_unknown_receipt_is_one_line(ddir):
    code, _, err = run("hw", "print-receipt", "--data-dir", str(ddir.root), "--receipt", "99")
    assert code == 1 and "no sale 99" in err and err.count("\n") == 1


def test_engrave_records_the_outcome(ddir):
    code, out, err = run(
        "hw",
        "engrave",
        "--data-dir",
        str(ddir.root),
        "--text",
        "Anna",
        "--material",
        "leather",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["job"]["outcome"] == "completed" and result["toolpath"]["material"] == "leather"
    assert "done: " in err  # progress goes to stderr with --json
    [event] = events(ddir, "engraving.completed")
    assert event.payload["text"] == "Anna" and event.payload["lines_acked"] > 0


def test_engrave_dry_run_and_refusals(ddir):
    code, out, _ = run("hw", "engrave", "--data-dir", str(ddir.root), "--text", "Anna", "--dry-run")
    assert code == 0 and "frame traced (laser off)" in out
    assert events(ddir, "engraving.completed") == []
    code, _, err = run(
        "hw",
        "engrave",
        "--data-dir",
        str(ddir.root),
        "--text",
        "A dedication far too long for a small keyring blank",
    )
    assert code == 1 and "does not fit" in err and err.count("\n") == 1
    code, _, err = run(
        "hw", "engrave", "--data-dir", str(ddir.root), "--text", "Hi", "--material", "glass"
    )
    assert code == 1 and "material 'glass' is not known" in err


def test_photo_command(ddir, tmp_path):
    config = ddir.load_config()
    config.update("location", latitude=50.06, longitude=19.94)
    ddir.save_config(config)
    out_file = tmp_path / "p.jpg"
    code, out, err = run(
        "hw", "photo", "--data-dir", str(ddir.root), "--out", str(out_file), "--json"
    )
    assert code == 0, err
    info = json.loads(out)
    assert out_file.exists() and info["latitude"] == 50.06
    [event] = events(ddir, "photo.captured")
    assert event.payload["sha256"] == info["sha256"]
    set_hw(ddir, camera="sim://?missing=1")
    code, _, err = run("hw", "photo", "--data-dir", str(ddir.root), "--out", str(out_file))
    assert code == 1 and "no camera detected" in err


def test_drawer_command(ddir):
    code, out, _ = run("hw", "drawer", "--data-dir", str(ddir.root))
    assert code == 0 and out.strip() == "cash drawer opened"
    assert len(events(ddir, "drawer.opened")) == 1


def test_every_hw_command_has_help(ddir):
    code, out, _ = run("hw", "--help")
    assert code == 0
    for name in ("list", "print-test", "print-receipt", "reprint", "drawer", "engrave", "photo"):
        assert name in out
        code, sub, _ = run("hw", name, "--help")
        assert code == 0 and "--data-dir" in sub


def test_open_devices_is_lazy_and_never_raises(ddir):
    config = ddir.load_config()
    config.update("hardware", printer="bogus", engraver="none://")
    devices = open_devices(config, ddir)
    assert devices._made == {}  # nothing built, nothing opened
    state = devices.state("printer")
    assert not state.ok and "no scheme" in state.message
    assert devices.state("engraver").detail == {"configured": False}
    assert devices.state("gpio").ok
    devices.close()


def test_printed_qr_is_the_signed_receipt_payload(ddir):
    """Wiring with compliance: the QR on paper verifies against the till's public key."""
    from appliance.formats.receipt import short_code, verify_receipt_payload

    devices = open_devices(ddir.load_config(), ddir)
    try:
        with Till.open(ddir) as till:
            sale = till.find_sale(1)
            payload = default_qr_for(till, sale)
            assert print_sale_receipt(till, sale, devices.printer, payload).ok
            sim = devices.printer.simulator
            [qr] = [b for b in sim.blocks if isinstance(b, Qr)]
            assert qr.data == payload
            assert verify_receipt_payload(qr.data, till.public_key_hex()).ok
            assert short_code(payload) in sim.rendered_text()
    finally:
        devices.close()


def test_devices_read_work_area_materials_and_sim_options(ddir):
    config = ddir.load_config()
    config.data["engraver"] = {"width_mm": 80, "height_mm": 30}
    config.data["materials"] = {"wood": {"power": 650}}
    config.update("hardware", printer="sim://?paper=near_end", paper_width_mm=58)
    devices = open_devices(config, ddir)
    try:
        assert devices.work_area().width_mm == 80
        assert devices.material("wood").power == 650
        state = devices.state("printer")
        assert state.ok and "running low" in state.message and state.detail["columns"] == 32
    finally:
        devices.close()


def set_work_area(ddir, **area):
    config = ddir.load_config()
    config.data.setdefault("engraver", {}).update(area)
    ddir.save_config(config)


def engraving_events(ddir):
    with Till.open(ddir) as till:
        return [e for e in till.log.events(0) if e.type.startswith("engraving.")]


def test_engrave_beyond_the_travel_is_refused_in_one_line_and_nothing_recorded(ddir):
    set_work_area(ddir, origin_x_mm=280, width_mm=50)  # the sim's $130=300
    code, out, err = run("hw", "engrave", "--data-dir", str(ddir.root), "--text", "Ana")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "X314.667" in err and "$130=300" in err
    assert "origin_x_mm + width_mm" in err
    code, _, err = run("hw", "engrave", "--data-dir", str(ddir.root), "--text", "Ana", "--dry-run")
    assert code == 1 and "leaves the engraver's travel" in err and err.count("\n") == 1
    assert engraving_events(ddir) == []


def test_engrave_on_a_homing_machine_needs_home_first(ddir):
    set_hw(ddir, engraver="sim://?speed=400&homing=1")
    code, _, err = run("hw", "engrave", "--data-dir", str(ddir.root), "--text", "Ana")
    assert code == 1 and err.count("\n") == 1
    assert "in Alarm, raised before this connection" in err and "--home" in err
    assert "alarm 0" not in err
    assert engraving_events(ddir) == []
    code, out, err = run(
        "hw", "engrave", "--data-dir", str(ddir.root), "--text", "Ana", "--home", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["job"]["outcome"] == "completed"
    [event] = engraving_events(ddir)
    assert event.type == "engraving.completed" and event.payload["error_code"] is None


def test_home_without_homing_is_refused_in_one_line(ddir):
    code, _, err = run("hw", "engrave", "--data-dir", str(ddir.root), "--text", "Ana", "--home")
    assert code == 1 and err.count("\n") == 1
    assert "homing off ($22=0)" in err and "--unlock" in err
    assert engraving_events(ddir) == []
