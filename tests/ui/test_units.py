"""The kiosk's Kivy-free parts on real data folders: formatting, PIN, catalogs, session, CLI."""

from __future__ import annotations

import gettext
import queue
import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import techpin as pin
from appliance.errors import RuleViolation, TillError
from appliance.events import SELFTEST_OVERRIDE
from appliance.formats import receipt as receipt_sig
from ui import fmt, i18n
from ui.session import Session

UI = Path(__file__).resolve().parents[2] / "ui"
TILLBOX = Path(sys.executable).with_name("tillbox")


# -- money ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("minor", "currency", "locale", "text"),
    [
        (1250, "EUR", "en", "€12.50"),
        (123456789, "EUR", "de", "1.234.567,89 €"),
        (-5, "EUR", "fr", "-0,05 €"),
        (1995, "CHF", "en", "CHF 19.95"),
        (1995, "USD", "en", "$19.95"),
        (500, "JPY", "en", "¥500"),
        (100, "XYZ", "en", "XYZ 1.00"),
        (100, "EUR", "pt-BR", "€1.00"),  # unknown locale: English
    ],
)
def test_money_in_the_shops_locale(minor, currency, locale, text):
    assert fmt.money(minor, currency, locale) == text


def test_a_banknote_drops_its_zero_fraction_only():
    assert fmt.money(5000, "EUR", "en", whole=True) == "€50"
    assert fmt.money(20000, "EUR", "de", whole=True) == "200 €"
    assert fmt.money(1340, "EUR", "en", whole=True) == "€13.40"
    assert fmt.money(1000, "JPY", "en", whole=True) == "¥1,000"


def test_keypad_amount_is_minor_units():
    assert fmt.parse_minor("5000", "EUR") == 5000
    assert fmt.parse_minor("", "EUR") is None
    assert fmt.parse_minor("12345678901", "EUR") == 123456789  # capped at 9 digits


# -- technician PIN -------------------------------------------------------------------------
def test_pin_hash_verifies_only_the_right_pin():
    stored = pin.hash_pin("2468", salt=bytes(16), iterations=1000)
    assert stored.startswith("pbkdf2-sha256$1000$" + "00" * 16 + "$")
    assert "2468" not in stored.split("$", 3)[3]
    assert pin.verify_pin("2468", stored)
    assert not pin.verify_pin("2469", stored)
    assert not pin.verify_pin("2468", "")
    assert not pin.verify_pin("2468", "md5$1$00$00")
    assert not pin.verify_pin("2468", "pbkdf2-sha256$x$zz$00")


@pytest.mark.parametrize("bad", ["", "123", "12a4", "1234567890123", "１２３４"])
def test_pin_shape_is_refused_with_the_rule(bad):
    with pytest.raises(TillError, match="4 to 12 digits"):
        pin.hash_pin(bad)


# -- catalogs -------------------------------------------------------------------------------
def test_compiled_catalogs_match_their_po_files():
    for po in UI.glob("locale/*/LC_MESSAGES/tillbox.po"):
        text = po.read_text(encoding="utf-8")
        expected = i18n.compile_mo(i18n.parse_po(text), i18n.po_header(text))
        assert po.with_suffix(".mo").read_bytes() == expected, f"run python -m ui.i18n ({po})"


def test_every_screen_string_is_translated_to_german():
    files = sorted([*UI.rglob("*.py"), *UI.rglob("*.kv")])
    assert UI / "screens" / "sell.kv" in files  # the screens' own modules and KV rules
    source = "".join(f.read_text() for f in files)
    used = set(re.findall(r"""\b(?:t|N_)\(\s*(["'])((?:\\.|(?!\1).)+)\1\s*[,)]""", source))
    used = {text for _quote, text in used}
    assert len(used) > 100
    de = i18n.parse_po((UI / "locale/de/LC_MESSAGES/tillbox.po").read_text(encoding="utf-8"))
    missing = sorted(used - set(de))
    assert not missing, f"add to ui/locale/de/LC_MESSAGES/tillbox.po: {missing}"


def test_gettext_reads_the_german_catalog():
    assert "de" in i18n.available()
    de = i18n.translation("de")
    assert isinstance(de, gettext.GNUTranslations)
    assert de.gettext("Pay") == "Bezahlen"
    assert de.gettext("not in the catalog") == "not in the catalog"
    assert i18n.translation("xx").gettext("Pay") == "Pay"


# -- the session over a real till -----------------------------------------------------------
def test_cart_merges_lines_and_the_core_prices_them(till):
    s = Session(till)
    s.add("MUG-01")
    s.add("MUG-01")
    s.add("HONEY")
    assert [(c.sku, c.qty) for c in s.cart] == [("MUG-01", 2), ("HONEY", 1)]
    assert s.quote().total_minor == 2 * 1200 + 650
    s.bump(0, -1)
    s.bump(1, -1)  # to zero: the line goes
    assert [(c.sku, c.qty) for c in s.cart] == [("MUG-01", 1)]
    with pytest.raises(RuleViolation, match="unknown SKU"):
        s.add("NOPE")


def test_a_bad_promo_code_is_refused_and_the_cart_keeps_none(till):
    s = Session(till)
    s.add("TEE-M")
    with pytest.raises(RuleViolation, match="not valid"):
        s.set_promo("FREESTUFF")
    assert s.promo is None
    s.set_promo(" market10 ")
    assert s.promo == "MARKET10"
    assert s.quote().discount_minor == 200


def test_a_second_pay_tap_replays_the_same_sale(till):
    s = Session(till)
    s.add("CAFE")
    key = s.key
    first = s.pay("cash", 500)
    second = s.pay("cash", 500)  # the cart is empty now, but the key is the same
    assert s.key == key
    assert not first.replayed and second.replayed
    assert second.event.seq == first.event.seq
    assert till.log.conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 1
    s.add("CAFE")  # a new cart is a new sale
    assert s.key != key


def test_card_refusal_is_the_cores_reason(till):
    s = Session(till)
    for _ in range(6):
        s.add("TEE-M")
    assert "above the offline card limit" in s.card_refusal()
    with pytest.raises(RuleViolation, match="offline card limit"):
        s.pay("card")
    assert s.cart  # nothing recorded, the cart is still there


def test_find_sale_by_number_or_by_the_receipt_qr(till, tmp_path):
    s = Session(till)
    s.add("JAM-FR")
    sale = s.pay("cash")
    payload = receipt_sig.receipt_qr_payload(till, sale.event)
    assert s.find_sale(payload)["receipt_no"] == sale.payload["receipt_no"]
    assert s.find_sale(str(sale.payload["receipt_no"]))["sale_id"] == sale.payload["sale_id"]
    foreign = payload.replace(f"*{till.device_id}*", "*other-till*", 1)
    with pytest.raises(RuleViolation, match="from till other-till"):
        s.find_sale(foreign)
    with pytest.raises(RuleViolation, match="not a tillbox receipt"):
        s.find_sale("TB1*garbage*")
    with pytest.raises(RuleViolation, match="digits only"):
        s.find_sale("abc")
    with pytest.raises(TillError, match="no sale 99"):
        s.find_sale("99")


def test_a_scanned_receipt_must_be_signed_by_this_till_and_match_its_log(till):
    from dataclasses import replace

    from nacl.signing import SigningKey

    from appliance import keys

    s = Session(till)
    s.add("MUG-01")
    s.add("MUG-01")
    sale = s.pay("cash", 5000)
    payload = receipt_sig.receipt_qr_payload(till, sale.event)
    no = sale.payload["receipt_no"]
    assert s.receipt_from_qr(payload) == no
    fields, _sig, _signed = receipt_sig.parse_payload(payload)
    # the same fields signed by another key: a forgery
    forged = receipt_sig.sign_fields(fields, SigningKey(bytes(range(32))))
    with pytest.raises(RuleViolation, match=f"receipt {no} refused: its signature") as info:
        s.find_sale(forged)
    assert "\n" not in str(info.value)
    # genuine key, but fields that differ from the logged sale (another data folder's
    # receipt with a reused key, or a bug): refused too
    own = keys.load_signing_key(till.data_dir.private_key_path)
    altered = receipt_sig.sign_fields(replace(fields, unix_s=fields.unix_s + 60), own)
    with pytest.raises(RuleViolation, match=f"does not match sale {no}"):
        s.find_sale(altered)
    # a refund receipt is genuine but is not refunded again
    refund = s.refund(no, [("MUG-01", 1)])
    refund_qr = receipt_sig.receipt_qr_payload(till, refund.event)
    with pytest.raises(RuleViolation, match="refund receipt and cannot be refunded again"):
        s.find_sale(refund_qr)
    assert len([e for e in till.log.events() if e.type == "refund.issued"]) == 1


def _qr_png(path, text, damage=False):
    import os

    import qrcode
    from PIL import ImageDraw

    img = qrcode.make(text, border=4).convert("L")
    if damage:  # a crease across the code: zxing finds it but cannot decode it
        w, h = img.size
        ImageDraw.Draw(img).rectangle([w * 0.3, h * 0.3, w * 0.7, h * 0.7], fill=0)
    tmp = path.with_suffix(".tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


def _camera(till, url):
    config = till.data_dir.load_config()
    config.update("hardware", camera=url)
    till.data_dir.save_config(config)


def test_hub_scan_decodes_the_receipt_the_camera_sees_and_says_why_not(till, tmp_path):
    s = Session(till)
    s.add("HONEY")
    sale = s.pay("cash", 1000)
    payload = receipt_sig.receipt_qr_payload(till, sale.event)
    scene = tmp_path / "scene.png"
    _camera(till, f"sim://?scene={scene}")

    def scan():
        return _run_hub(till.data_dir, lambda hub, done: hub.scan_receipt(done, done))

    assert "no QR code in view" in scan()
    _qr_png(scene, payload)
    assert scan() == payload
    assert s.find_sale(scan())["receipt_no"] == sale.payload["receipt_no"]
    _qr_png(scene, payload, damage=True)
    assert "in view but could not be read" in scan()
    _camera(till, "sim://?missing=1")
    assert "no camera detected" in scan()
    _camera(till, "none://")
    assert "no camera configured" in scan()


def test_hub_preview_is_only_the_receipt_just_printed(till):
    s = Session(till)
    s.add("HONEY")
    first = s.pay("cash", 1000)
    s.add("JAM-FR")
    second = s.pay("cash", 1000)

    from ui.devices import DeviceHub

    posted = queue.Queue()
    hub = DeviceHub(till.data_dir, posted.put)
    reports = []
    try:
        hub.print_receipt(first.event.seq, reports.append)
        hub.print_receipt(second.event.seq, reports.append)
        for _ in range(2):
            posted.get(timeout=20)()
    finally:
        hub.close()
    assert [r.receipt_no for r in reports] == [
        first.payload["receipt_no"],
        second.payload["receipt_no"],
    ]
    report = reports[1]
    assert report.receipt_no == second.payload["receipt_no"]
    assert f"Receipt {second.payload['receipt_no']}" in report.preview
    assert "honey" not in report.preview  # the first receipt is not in this preview
    assert report.preview.count("TOTAL") == 1


class _Check:
    def __init__(self, name, result, fatal):
        self.name, self.result, self.fatal = name, result, fatal
        self.value, self.fix = f"{name} measured", f"fix {name}"


class _Report:
    def __init__(self, checks, recorded_seq=None, record_problem=""):
        self.checks, self.recorded_seq, self.record_problem = checks, recorded_seq, record_problem


def _recorded(till, checks):
    """A self-test result recorded the way compliance.selftest records it."""
    payload = {
        "verdict": "fail" if any(c.fatal and c.result == "fail" for c in checks) else "pass",
        "trigger": "kiosk",
        "checks": [
            {"name": c.name, "result": c.result, "fatal": c.fatal, "value": c.value, "fix": c.fix}
            for c in checks
        ],
    }
    return _Report(checks, recorded_seq=till.record_selftest(payload).seq)


def _set_pin(till, digits):
    config = till.data_dir.load_config()
    config.update("ui", technician_pin_hash=pin.hash_pin(digits, iterations=1000))
    till.data_dir.save_config(config)


def test_a_failed_fatal_check_blocks_selling_until_a_logged_override(till):
    """The kiosk shows the core's gate: the rule lives in appliance.gate, not the session."""
    s = Session(till)
    checks = [
        _Check("log", "pass", True),
        _Check("permits", "fail", True),
        _Check("broker", "fail", False),
    ]
    gate = s.apply_selftest(_recorded(till, checks))
    assert gate.blocked and gate.failed == ["permits"]
    assert "permits failed (permits measured); fix: fix permits" in gate.reason
    s.add("CAFE")
    with pytest.raises(RuleViolation, match="blocked by the self-test"):
        s.pay("cash")
    with pytest.raises(RuleViolation, match="--set-technician-pin"):
        s.override("2468")
    _set_pin(till, "2468")
    with pytest.raises(RuleViolation, match="wrong technician PIN"):
        s.override("1111")
    count = till.log.conn.execute(
        "SELECT COUNT(*) FROM events WHERE type = ?", (SELFTEST_OVERRIDE,)
    ).fetchone()[0]
    assert count == 0
    assert s.override("2468").overridden
    event = list(till.log.events())[-1]
    assert event.type == SELFTEST_OVERRIDE and event.payload["failed"] == ["permits"]
    assert not s.pay("cash").replayed


def test_a_self_test_whose_result_was_not_recorded_blocks_in_the_kiosk(till):
    """The log cannot know about it, so the session blocks; the override is still logged."""
    s = Session(till)
    gate = s.selftest_unavailable("[selftest] fatal names unknown check(s) bogus")
    assert gate.blocked and gate.failed == ["selftest"]
    assert till.selftest_gate().blocked is False  # the core saw no verdict
    s.add("CAFE")
    with pytest.raises(RuleViolation, match="could not run"):
        s.pay("cash")
    _set_pin(till, "2468")
    assert s.override("2468").overridden
    event = list(till.log.events())[-1]
    assert event.type == SELFTEST_OVERRIDE and event.payload["failed"] == ["selftest"]
    assert not s.pay("cash").replayed


def test_close_shift_z_lines_come_from_the_core(till):
    s = Session(till)
    s.add("MUG-01")
    s.pay("card")
    z = s.close_shift()
    lines = s.z_lines(z, till.money)
    assert lines[0] == "Z report - shift 1"
    assert any("card" in ln and "EUR 12.00" in ln for ln in lines)
    assert lines[-2] == "Takings EUR 12.00"
    assert lines[-1] == "Cash: float EUR 0.00 + cash takings = EUR 0.00 in the drawer"
    assert s.shift() is None


# -- devices through the hub ----------------------------------------------------------------
def _run_hub(ddir, work):
    from ui.devices import DeviceHub

    posted = queue.Queue()
    hub = DeviceHub(ddir, posted.put)
    results = []
    try:
        work(hub, results.append)
        posted.get(timeout=20)()  # the callback, run on "the UI thread" (this one)
    finally:
        hub.close()
    return results[0]


def test_hub_prints_the_receipt_after_the_sale_and_reports_the_paper(till):
    s = Session(till)
    s.add("HONEY")
    sale = s.pay("cash", 1000)
    report = _run_hub(
        till.data_dir, lambda hub, done: hub.print_receipt(sale.event.seq, done, drawer=True)
    )
    assert report.ok and report.receipt_no == sale.payload["receipt_no"]
    assert "Wildflower honey 250 g" in report.preview and "TOTAL" in report.preview
    assert report.handed_at is not None and report.queue == []
    types = [e.type for e in till.log.events(sale.event.seq)]
    assert types == ["receipt.printed", "drawer.opened"]


def test_the_kiosks_reprint_is_a_marked_copy_on_paper_and_in_the_log(till):
    """The receipt screen's Reprint (``reprint=True``) and any later print of the same
    receipt: a copy on the paper, in the screen's preview and ``reprint: true`` in the log."""
    from ui.devices import DeviceHub

    s = Session(till)
    s.add("HONEY")
    sale = s.pay("cash", 1000)
    seq = sale.event.seq
    posted = queue.Queue()
    hub = DeviceHub(till.data_dir, posted.put)
    reports = []
    try:  # one hub, as the running kiosk has: its simulated paper keeps every receipt
        for reprint in (False, True, False):
            hub.print_receipt(seq, reports.append, reprint=reprint)
            posted.get(timeout=20)()
        paper = hub.devices.printer.simulator.receipts()
    finally:
        hub.close()
    # a new hub: the preview is laid out, as for a real printer (no simulated paper)
    laid_out = _run_hub(till.data_dir, lambda hub, done: hub.print_receipt(seq, done))
    assert all(r.ok for r in [*reports, laid_out])
    copy = "*** COPY (reprint) ***"
    assert [copy in piece.splitlines() for piece in paper] == [False, True, True]
    assert [copy in r.preview.splitlines() for r in reports] == [False, True, True]
    assert copy in laid_out.preview.splitlines() and "TOTAL" in laid_out.preview
    printed = [e.payload for e in till.log.events(seq) if e.type == "receipt.printed"]
    assert [p["receipt_no"] for p in printed] == [sale.payload["receipt_no"]] * 4
    assert [p["reprint"] for p in printed] == [False, True, True, True]


def test_a_printer_out_of_paper_queues_the_receipt_and_loses_no_sale(till):
    config = till.data_dir.load_config()
    config.update("hardware", printer="sim://?paper=out")
    till.data_dir.save_config(config)
    s = Session(till)
    s.add("CAFE")
    sale = s.pay("cash")
    report = _run_hub(till.data_dir, lambda hub, done: hub.print_receipt(sale.event.seq, done))
    assert not report.ok and "paper" in report.message
    assert report.queue == [sale.payload["receipt_no"]]
    assert "TOTAL" in report.preview  # the screen still shows what the receipt says
    assert till.reprint_queue() == [sale.payload["receipt_no"]]


# -- the command line -----------------------------------------------------------------------
def _tillbox(*args, stdin=""):
    return subprocess.run(
        [str(TILLBOX), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_set_technician_pin_stores_only_a_hash(till):
    root = str(till.data_dir.root)
    bad = _tillbox("kiosk", "--data-dir", root, "--set-technician-pin", stdin="12\n")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "4 to 12 digits" in bad.stderr
    ok = _tillbox("kiosk", "--data-dir", root, "--set-technician-pin", stdin="97531\n")
    assert ok.returncode == 0, ok.stderr
    text = till.data_dir.config_path.read_text()
    assert "97531" not in text
    stored = till.data_dir.load_config().section("ui")["technician_pin_hash"]
    assert pin.verify_pin("97531", stored)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "big"], "must be WIDTHxHEIGHT"),
        (["--size", "10x10"], "not a display size"),
        (["--lang", "xx"], "has no catalog"),
    ],
)
def test_bad_kiosk_options_fail_in_one_line_before_any_window(till, args, needle):
    result = _tillbox("kiosk", "--data-dir", str(till.data_dir.root), *args)
    assert result.returncode == 1
    assert needle in result.stderr and result.stderr.count("\n") == 1


def test_kiosk_on_a_folder_that_is_no_till_says_what_to_do(tmp_path):
    result = _tillbox("kiosk", "--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "tillbox init" in result.stderr


def test_the_tillbox_command_does_not_import_kivy():
    code = (
        "import sys\nfrom appliance.cli import main\n"
        "try:\n    main(['kiosk', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('kivy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert "--set-technician-pin" in out.stdout


def test_status_poll_reports_sync_state_battery_and_records_power_events(till):
    import time

    from appliance import sync_state
    from ui.devices import DeviceHub

    # A live agent whose own count (7) disagrees with the log: the log's count is shown.
    sync_state.write(
        till.data_dir.sync_dir,
        sync_state.SyncState(
            online=True,
            acked_seq=1,
            queued_events=7,
            drain_estimate_s=3.5,
            updated_wall_ms=time.time_ns() // 1_000_000,
            running=True,
        ),
    )
    posted = queue.Queue()
    hub = DeviceHub(till.data_dir, posted.put)
    try:
        hub.devices.gpio.sim_drive("power_good", False)  # the UPS says: mains lost
        infos = []
        hub.poll(infos.append)
        posted.get(timeout=30)()
    finally:
        hub.close()
    info = infos[0]
    tail = till.log.conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    assert info["sync"].online and info["sync"].agent_running
    assert info["sync"].waiting == tail - 1 != 7  # power.lost included: written in the poll
    assert info["states"]["gpio"].detail["on_battery"] is True
    assert info["gpio_events"] >= 1
    assert [e.type for e in till.log.events()][-1] == "power.lost"


def test_the_committed_screenshots_cover_every_screen_the_suite_shoots():
    """docs/screenshots holds each screenshot the flows take, at the size they take it."""
    here = Path(__file__).parent
    docs = here.parents[1] / "docs" / "screenshots"
    wanted = set()
    for test_file, size in (
        ("test_flows.py", "800x480"),
        ("test_multitill_kiosk.py", "800x480"),
        ("test_screens.py", None),
    ):
        text = (here / test_file).read_text()
        if size is None:  # the tour is 1280x800; its last test runs at 800x480
            tour, _, rest = text.partition("def test_printer_out_of_paper")
            wanted |= {f"{n}-1280x800.png" for n in re.findall(r'screenshot\("([^"]+)"\)', tour)}
            wanted |= {f"{n}-800x480.png" for n in re.findall(r'screenshot\("([^"]+)"\)', rest)}
        else:
            wanted |= {f"{n}-{size}.png" for n in re.findall(r'screenshot\("([^"]+)"\)', text)}
    assert len(wanted) > 30
    missing = sorted(n for n in wanted if not (docs / n).is_file())
    assert not missing, (
        f"refresh with TILLBOX_SCREENSHOTS_DIR=docs/screenshots pytest tests/ui: {missing}"
    )
    linked = set(re.findall(r"screenshots/([\w.-]+\.png)", (docs.parent / "ui.md").read_text()))
    assert linked <= {p.name for p in docs.glob("*.png")}


def test_scan_refund_accepts_tb1_receipts_and_checks_what_tb2_binds(till):
    from dataclasses import replace

    from appliance import keys

    s = Session(till)
    s.add("MUG-01")
    sale = s.pay("card")
    no = sale.payload["receipt_no"]
    own = keys.load_signing_key(till.data_dir.private_key_path)
    # a receipt printed before TB2: the TB1 block of the same sale still opens it
    prev = receipt_sig.previous_receipt_hash(till.log, sale.event.seq, no)
    tb1 = receipt_sig.sign_fields(receipt_sig.fields_for_event(sale.event, prev), own)
    assert tb1.startswith("TB1*") and s.receipt_from_qr(tb1) == no
    tb2 = receipt_sig.receipt_qr_payload(till, sale.event)
    assert tb2.startswith("TB2*") and s.receipt_from_qr(tb2) == no
    fields, _sig, _signed = receipt_sig.parse_payload(tb2)
    # signed by this till's key, but naming another method, tenant or event: refused
    for changed in (
        replace(fields, method="cash"),
        replace(fields, tenant="other"),
        replace(fields, event_ref="00" * 24),
    ):
        with pytest.raises(RuleViolation, match=f"does not match sale {no}"):
            s.receipt_from_qr(receipt_sig.sign_fields(changed, own))


# -- the console's Kivy set-up (ui.boot) -------------------------------------------------------
_PREPARE = """
import json, os, sys
from pathlib import Path
from appliance.datadir import DataDir
from ui.boot import prepare
prepare(DataDir(Path(sys.argv[1])), (800, 480))
from kivy.config import Config
print(json.dumps({k: os.environ.get(k) for k in
                  ("KIVY_WINDOW", "SDL_VIDEODRIVER", "SDL_TOUCH_MOUSE_EVENTS")}
                 | {"touch": Config.getdefault("input", "touchscreen", None),
                    "mouse": Config.get("input", "mouse"),
                    "fullscreen": Config.get("graphics", "fullscreen")}))
"""


@pytest.mark.parametrize("console", [True, False])
def test_on_the_console_a_touch_reaches_kivy_once(tmp_path, console):
    """On the Pi's console SDL (kmsdrm) reads the touchscreen itself and turns each touch
    into a mouse click; a Kivy touchscreen provider as well would make one tap two."""
    import json
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_TOUCH_MOUSE_EVENTS",
                        "SDL_VIDEODRIVER", "KIVY_WINDOW")}  # fmt: skip
    if not console:
        env["DISPLAY"] = ":99"
    env["TILLBOX_KIVY_HOME"] = str(tmp_path / "kivy")
    done = subprocess.run([sys.executable, "-c", _PREPARE, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["touch"] is None  # no second source of touches
    assert got["SDL_TOUCH_MOUSE_EVENTS"] is None  # SDL's default: a touch is a click
    assert got["mouse"] == "mouse,disable_multitouch"  # no red dots: one finger, one touch
    if console:
        assert got["SDL_VIDEODRIVER"] == "kmsdrm" and got["fullscreen"] == "auto"
    else:
        assert got["SDL_VIDEODRIVER"] is None
