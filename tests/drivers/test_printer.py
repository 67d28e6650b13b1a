"""Receipt printer against the ESC/POS simulator: layout, code pages, status, faults."""

from __future__ import annotations

import os
import socket
import time

import pytest

from appliance.devices import DeviceError
from appliance.pricing import CartLine
from appliance.services.drawer import open_drawer
from appliance.services.printing import drain_reprint_queue, print_sale_receipt
from drivers.common import DeviceFault
from drivers.escpos_sim import EscposInterpreter, PrinterSimulator
from drivers.printer import (
    PrinterStatus,
    ReceiptPrinter,
    columns_for,
    parse_status,
    usb_ids,
)
from drivers.testing import wait_for


def events_of(till, type_):
    return [e for e in till.log.events(0) if e.type == type_]


def test_receipt_renders_names_in_their_own_letters(till, sale, printer):
    outcome = print_sale_receipt(till, sale, printer, qr_payload="TBX1.sig")
    assert outcome.ok and outcome.confirmed
    text = printer.simulator.rendered_text()
    assert "Łódź" in text
    assert "Brötchen" in text
    assert "Café crème" in text
    assert "[QR TBX1.sig]" in text
    assert "Riverside Makers' Stall" in text
    assert "Permit DEMO-PERMIT-2026" in text
    assert f"Receipt {sale.payload['receipt_no']}" in text
    # the code page switches really went over the wire: ł is not in CP437
    raw = bytes(printer.simulator.received)
    assert b"\x1bt\x12" in raw  # ESC t 18 = CP852 for Ł, ó, ź
    assert "Łódź".encode("cp852") in raw
    [printed] = events_of(till, "receipt.printed")
    assert printed.payload["receipt_no"] == sale.payload["receipt_no"]
    assert till.reprint_queue() == []


def test_receipt_columns_follow_paper_width(till, sale):
    narrow = ReceiptPrinter("sim://", paper_width_mm=58, timeout=1.0)
    try:
        assert print_sale_receipt(till, sale, narrow).ok
        lines = narrow.simulator.rendered_text().splitlines()
        assert max(len(line) for line in lines) == 32
        assert any(line.startswith("TOTAL") and line.endswith("EUR 11.30") for line in lines)
    finally:
        narrow.shutdown()
    assert columns_for("default", 80) == 48
    assert columns_for("TM-T88V", 58) == 42  # the profile knows its paper
    with pytest.raises(DeviceFault, match="58 or 80"):
        columns_for("default", 66)


def test_receipt_shows_totals_tax_and_change(till, sale, printer):
    print_sale_receipt(till, sale, printer)
    text = printer.simulator.rendered_text()
    lines = text.splitlines()
    assert any(line.startswith("Change") and line.endswith("EUR 8.70") for line in lines)
    assert any(line.startswith("Paid cash") and line.endswith("EUR 20.00") for line in lines)
    assert any("reduced 5.5%" in line and line.endswith("EUR 0.44") for line in lines)
    assert "[QR" not in text  # no payload: the slot stays empty


def test_out_of_paper_before_printing_queues_the_receipt(till, sale, printer):
    printer.simulator.set_paper("out")
    outcome = print_sale_receipt(till, sale, printer)
    assert not outcome.ok
    assert "out of paper" in outcome.message
    assert till.reprint_queue() == [sale.payload["receipt_no"]]
    [failed] = events_of(till, "receipt.failed")
    assert "out of paper" in failed.payload["reason"]
    assert printer.simulator.rendered_text() == ""  # nothing printed into an empty printer
    # the sale is still there, whole
    assert till.find_sale(sale.payload["receipt_no"]).payload == sale.payload


def test_paper_running_out_mid_receipt_is_caught_and_reprinted(till, sale, printer):
    printer.simulator.run_out_after(5)
    outcome = print_sale_receipt(till, sale, printer)
    assert not outcome.ok and "stopped while printing" in outcome.message
    assert "TOTAL" not in printer.simulator.rendered_text()  # the receipt is incomplete
    assert till.reprint_queue() == [sale.payload["receipt_no"]]
    printer.simulator.set_paper("ok")
    printer.simulator.clear()
    outcomes = drain_reprint_queue(till, printer)
    assert [o.ok for o in outcomes] == [True]
    assert till.reprint_queue() == []
    text = printer.simulator.rendered_text()
    assert "COPY (reprint)" in text and "TOTAL" in text


def test_refund_receipts_print_and_reprint(till, sale, printer):
    refund = till.refund(sale.payload["receipt_no"], [("BRATW", 1)]).event
    printer.simulator.set_paper("out")
    assert not print_sale_receipt(till, refund, printer).ok
    printer.simulator.set_paper("ok")
    [outcome] = drain_reprint_queue(till, printer)
    assert outcome.ok and outcome.receipt_no == refund.payload["receipt_no"]
    text = printer.simulator.rendered_text()
    assert f"REFUND of receipt {sale.payload['receipt_no']}" in text
    assert "Refunded cash" in text and "Change" not in text
    assert "Brötchen" in text


def test_drain_stops_at_first_failure_and_keeps_the_rest(till, printer):
    sales = [till.sell([CartLine("MUG-01", 1)], "cash").event for _ in range(3)]
    printer.simulator.set_paper("out")
    for s in sales:
        assert not print_sale_receipt(till, s, printer).ok
    assert drain_reprint_queue(till, printer)[-1].ok is False
    assert len(till.reprint_queue()) == 3
    printer.simulator.set_paper("ok")
    assert [o.ok for o in drain_reprint_queue(till, printer)] == [True, True, True]
    assert till.reprint_queue() == []


def test_near_end_prints_and_warns(till, sale, printer):
    printer.simulator.set_paper("near_end")
    outcome = print_sale_receipt(till, sale, printer)
    assert outcome.ok and "running low" in outcome.message
    assert "TOTAL" in printer.simulator.rendered_text()


def test_each_print_records_the_paper_level_the_printer_answered(till, sale, printer):
    """The region's fleet page reads the paper from these events (sync_agent/health.py)."""
    printer.simulator.set_paper("near_end")
    assert print_sale_receipt(till, sale, printer).ok
    printer.simulator.set_paper("out")
    assert not print_sale_receipt(till, sale, printer).ok
    printer.simulator.set_paper("ok")
    assert print_sale_receipt(till, sale, printer).ok
    printer.simulator.mute = True
    assert print_sale_receipt(till, sale, printer).ok
    outcomes = [
        (e.type, e.payload["paper"])
        for e in till.log.events(0)
        if e.type in ("receipt.printed", "receipt.failed")
    ]
    assert outcomes == [
        ("receipt.printed", "near_end"),
        ("receipt.failed", "out"),
        ("receipt.printed", "ok"),
        ("receipt.printed", "unknown"),
    ]


def test_offline_and_cover_open_are_reported(till, sale, printer):
    printer.simulator.set_online(False)
    state = printer.state()
    assert not state.ok and "cover is open" in state.message
    assert not print_sale_receipt(till, sale, printer).ok
    printer.simulator.set_online(False, cover_open=False)
    assert "offline" in printer.state().message


def test_silent_printer_is_unknown_not_ok(till, sale, printer):
    printer.simulator.mute = True
    status = printer.status()
    assert status == PrinterStatus(answered=False)
    assert status.paper == "unknown" and status.online is None
    state = printer.state()
    assert "does not report its status" in state.message
    outcome = print_sale_receipt(till, sale, printer)
    assert outcome.ok and not outcome.confirmed
    [printed] = events_of(till, "receipt.printed")
    assert printed.payload["confirmed"] is False


def test_python_escpos_pitfall_is_real():
    """The reason we don't use escpos' paper_status(): an empty reply reads as 'paper OK'."""
    from escpos.printer import Dummy

    class Silent(Dummy):
        def _read(self):
            return b""

    assert Silent().paper_status() == 2  # escpos: "adequate"
    assert parse_status(None, None, None).paper == "unknown"  # us: unknown


def test_status_bytes_decode_exactly():
    assert parse_status(0x12, 0x12, 0x12) == PrinterStatus(True, True, "ok", False)
    assert parse_status(0x1A, 0x16, 0x1E) == PrinterStatus(True, False, "near_end", True)
    assert parse_status(0x1A, 0x32, 0x72).paper == "out"
    assert parse_status(0xFF, None, None) == PrinterStatus(False)  # garbage is not an answer


def test_unplugged_printer_gives_a_clear_state_and_no_hang(till, sale):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    p = ReceiptPrinter(f"tcp://127.0.0.1:{port}", timeout=1.0)
    state = p.state()
    assert not state.ok and "refused the connection" in state.message
    outcome = print_sale_receipt(till, sale, p)
    assert not outcome.ok and "refused" in outcome.message
    assert till.reprint_queue() == [sale.payload["receipt_no"]]


def test_printer_unplugged_mid_session(till, sale, printer):
    assert printer.state().ok
    printer.simulator.stop()
    outcome = print_sale_receipt(till, sale, printer)
    assert not outcome.ok
    assert till.reprint_queue() == [sale.payload["receipt_no"]]


def test_missing_serial_device_and_bad_urls():
    state = ReceiptPrinter("serial:///dev/ttyNOPE0?baud=19200").state()
    assert not state.ok and "not connected" in state.message
    state = ReceiptPrinter("file:///nonexistent/lp0").state()
    assert not state.ok
    with pytest.raises(DeviceFault, match="no scheme"):
        ReceiptPrinter("/dev/usb/lp0")
    assert "not a printer" in ReceiptPrinter("gpiozero://").state().message


def test_usb_urls():
    assert usb_ids("usb://04b8:0202") == (0x04B8, 0x0202)
    with pytest.raises(DeviceFault, match="usb://VID:PID"):
        usb_ids("usb://epson")
    state = ReceiptPrinter("usb://04b8:0202").state()
    assert not state.ok
    assert "not connected" in state.message, state.message  # make test installs libusb


def test_usb_without_libusb_names_the_package(monkeypatch):
    """On a machine without libusb, pyusb only says "No backend available"."""
    import usb.backend.libusb0
    import usb.backend.libusb1

    monkeypatch.setattr(usb.backend.libusb1, "get_backend", lambda *a, **k: None)
    monkeypatch.setattr(usb.backend.libusb0, "get_backend", lambda *a, **k: None)
    state = ReceiptPrinter("usb://04b8:0202").state()
    assert not state.ok
    assert "apt-get install libusb-1.0-0" in state.message, state.message


def test_label_for_compliance(printer):
    printer.print_label("TBX-ENROLL-1", ["Stall 12", "Łódź"])
    text = printer.simulator.rendered_text()
    assert "Stall 12" in text and "Łódź" in text and "[QR TBX-ENROLL-1]" in text
    printer.simulator.set_paper("out")
    with pytest.raises(DeviceFault, match="out of paper"):
        printer.print_label("X", [])


def test_file_printer_prints_without_status(tmp_path, till, sale):
    target = tmp_path / "lp0"
    target.write_bytes(b"")
    p = ReceiptPrinter(f"file://{target}")
    outcome = print_sale_receipt(till, sale, p)
    p.close()
    assert outcome.ok and not outcome.confirmed
    data = target.read_bytes()
    assert data.startswith(b"\x1b@") and data.endswith(b"\x1dV\x00")
    interp = EscposInterpreter(48)
    interp.feed(data)
    assert any("Brötchen" in line for line in interp.text_lines())


def test_device_file_that_stops_taking_data_times_out(tmp_path, till, sale):
    """/dev/usb/lp0 blocks writers when the printer stalls; we give up after the timeout."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a printer that never reads
    try:
        p = ReceiptPrinter(f"file://{fifo}", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(DeviceFault, match="did not answer in time"):
            p.send(b"x" * 200_000)  # more than the pipe holds
        assert time.monotonic() - started < 5
        p.close()
    finally:
        os.close(reader)


def test_drawer_kick_exact_bytes_and_event(till, printer):
    seq = open_drawer(till, printer, reason="no sale")
    wait_for(lambda: printer.simulator.drawer_kicks, 5, "the drawer kick")
    # ESC p 0 50 50 (pin 2, 100 ms on/off), then the status questions that confirm it
    assert (
        bytes(printer.simulator.received)
        == b"\x1bp\x00\x32\x32" + b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"
    )
    [kick] = printer.simulator.drawer_kicks
    assert kick.pin == 2 and kick.on_ms == 100
    [event] = events_of(till, "drawer.opened")
    assert event.seq == seq and event.payload["reason"] == "no sale"


def test_drawer_kick_failure_is_a_device_fault(till, printer):
    printer.simulator.stop()
    # the core's device error (drivers.common.DeviceFault is its driver-side subclass)
    with pytest.raises(DeviceError, match="open it with the key"):
        open_drawer(till, printer)
    [fault] = events_of(till, "device.fault")
    assert fault.payload["device"] == "drawer"


def test_png_preview(tmp_path, till, sale, printer):
    print_sale_receipt(till, sale, printer, qr_payload="TBX1.sig")
    from PIL import Image

    path = printer.simulator.render_png(tmp_path / "r.png")
    with Image.open(path) as img:
        assert img.width == 48 * 12 + 24
        lines = [b for b in printer.simulator.blocks if type(b).__name__ == "Line"]
        assert img.height > 24 * len(lines) + 100  # every line plus the QR code
        # ink on paper: the preview is not blank
        assert min(img.convert("L").getdata()) == 0


def test_simulator_text_wraps_and_styles():
    sim = EscposInterpreter(10)
    sim.feed(b"\x1b@\x1ba\x01abc\n\x1ba\x00" + b"x" * 12 + b"\n\x1d!\x11AB\n")
    assert sim.text_lines() == ["   abc", "x" * 10, "xx", "AB"]


def test_simulator_serves_sequential_connections():
    sim = PrinterSimulator(32)
    try:
        for word in (b"one\n", b"two\n"):
            with socket.create_connection((sim.host, sim.port), timeout=2) as conn:
                conn.sendall(word + b"\x10\x04\x04")
                assert conn.recv(1) == b"\x12"
        assert sim.rendered_text() == "one\ntwo\n"
    finally:
        sim.stop()


def test_receipts_split_at_the_paper_cut_not_at_dashed_rule_lines(till, sale, printer):
    sim = printer.simulator
    rule = "-" * sim.columns
    # exact bytes: a dashed rule of the full width inside one receipt, then GS V 0 (cut)
    printer.send(b"\x1b@first\n" + rule.encode() + b"\nstill first\n\x1dV\x00second\n")
    wait_for(lambda: "second" in sim.rendered_text(), 5, "the bytes to reach the simulator")
    assert sim.receipts() == [f"first\n{rule}\nstill first", "second"]

    sim.clear()
    print_sale_receipt(till, sale, printer, qr_payload="TB1*x")
    refund = till.refund(sale.payload["receipt_no"], [("POSTCARD", 1)]).event
    print_sale_receipt(till, refund, printer, qr_payload="TB1*y")
    pieces = sim.receipts()
    assert len(pieces) == 2  # two receipts, two cuts, despite the rules in each
    assert rule in pieces[0] and rule in pieces[1]
    assert pieces[0].count("TOTAL") == 1 and "[QR TB1*x]" in pieces[0]
    assert "REFUND of receipt" in pieces[1] and "[QR TB1*y]" in pieces[1]
    assert "REFUND" not in pieces[0]
