import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TILLBOX = [sys.executable, "-m", "appliance.cli"]


def last_seq(cli, d) -> int:
    return cli("log", "verify", "--data-dir", d, "--json").json()["last_seq"]


def test_init_and_device_show(cli, tmp_path):
    d = str(tmp_path / "t")
    out = cli("init", "--data-dir", d, "--device-id", "kiosk-7", "--json").json()
    shown = cli("device", "show", "--data-dir", d, "--json").json()
    assert shown["device_id"] == out["device_id"] == "kiosk-7"
    assert re.fullmatch(r"[0-9a-f]{64}", shown["public_key"])
    assert (Path(d) / "keys" / "device.key").stat().st_mode & 0o777 == 0o600


def test_catalog_list_json(cli, shop):
    items = cli("catalog", "list", "--data-dir", shop, "--json").json()["items"]
    mug = next(i for i in items if i["sku"] == "MUG-01")
    assert mug["price_minor"] == 1200 and mug["tax_rate"] == "standard"
    assert {"sku", "name", "price_minor", "tax_rate"} <= set(mug)


def test_sale_refund_shift_verify_export(cli, shop):
    sale = cli(
        "sale",
        "--data-dir",
        shop,
        "--item",
        "MUG-01:2",
        "--item",
        "CAFE",
        "--pay",
        "cash",
        "--tendered",
        "3000",
        "--json",
    ).json()
    assert {"sale_id", "seq", "receipt_no", "total_minor"} <= set(sale)
    assert sale["total_minor"] == 2680 and sale["change_minor"] == 320
    refund = cli(
        "refund", "--data-dir", shop, "--sale", sale["sale_id"], "--item", "MUG-01:1", "--json"
    ).json()
    assert refund["total_minor"] == 1200 and refund["sale_id"] == sale["sale_id"]
    closed = cli("shift", "close", "--data-dir", shop, "--json").json()
    assert closed["z_report"]["takings_minor"] == 1480
    human = cli("shift", "open", "--data-dir", shop)
    assert human.out.startswith("shift 2 opened")
    verify = cli("log", "verify", "--data-dir", shop)
    assert verify.code == 0 and "log intact" in verify.out
    export = cli("log", "export", "--data-dir", shop, "--since", str(sale["seq"] - 1))
    lines = export.out.splitlines()
    assert [line.count('"type":') for line in lines] == [1] * len(lines)
    assert '"type":"sale.completed"' in lines[0] and '"type":"refund.issued"' in lines[1]


def test_data_dir_from_environment(shop, monkeypatch, cli):
    monkeypatch.setenv("TILLBOX_DATA_DIR", shop)
    assert cli("shift", "status", "--json").json() == {"open": True, "shift_no": 1}


BAD_INPUTS = [
    (["sale", "--item", "NOPE", "--pay", "cash"], 1, "unknown SKU 'NOPE'"),
    (["sale", "--item", "MUG-01:0", "--pay", "cash"], 1, "above zero"),
    (["sale", "--item", "MUG-01:-3", "--pay", "cash"], 1, "above zero"),
    (["sale", "--item", "MUG-01:x", "--pay", "cash"], 2, "not a whole number"),
    (["sale", "--item", "MUG-01", "--pay", "bitcoin"], 2, "invalid choice"),
    (["sale", "--item", "MUG-01", "--pay", "cash", "--tendered", "5"], 1, "less than"),
    (["sale", "--item", "MUG-01", "--pay", "cash", "--promo", "NOPE"], 1, "not valid"),
    (["refund", "--sale", "424242"], 1, "no sale 424242"),
    (["refund", "--sale", "not-a-sale"], 1, "no sale not-a-sale"),
    (["shift", "open"], 1, "already open"),
    (["catalog", "apply", "/nonexistent.json"], 1, "cannot read catalog"),
]


@pytest.mark.parametrize(("argv", "code", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(cli, shop, argv, code, message):
    before = last_seq(cli, shop)
    result = cli(*argv, "--data-dir", shop)
    assert result.code == code
    assert result.err.count("\n") == 1 and message in result.err, result.err
    assert result.out == ""
    assert last_seq(cli, shop) == before


def test_refund_of_more_than_sold_via_cli(cli, shop):
    sale = cli("sale", "--data-dir", shop, "--item", "JAM-FR:2", "--pay", "card", "--json").json()
    before = last_seq(cli, shop)
    result = cli(
        "refund", "--data-dir", shop, "--sale", str(sale["receipt_no"]), "--item", "JAM-FR:3"
    )
    assert result.code == 1 and "only 2 of 2 sold" in result.err
    assert last_seq(cli, shop) == before


def test_sale_with_shift_closed_and_missing_data_dir(cli, shop, tmp_path, monkeypatch):
    cli("shift", "close", "--data-dir", shop)
    result = cli("sale", "--data-dir", shop, "--item", "CAFE", "--pay", "cash")
    assert result.code == 1 and "open one first" in result.err
    monkeypatch.delenv("TILLBOX_DATA_DIR", raising=False)
    result = cli("shift", "status")
    assert result.code == 1 and "pass --data-dir DIR or set TILLBOX_DATA_DIR" in result.err
    result = cli("shift", "status", "--data-dir", str(tmp_path / "empty"))
    assert result.code == 1 and "tillbox init" in result.err


def test_corrupt_and_foreign_databases_via_cli(cli, shop):
    log = Path(shop) / "log.db"
    for name in ("log.db-wal", "log.db-shm"):
        (Path(shop) / name).unlink(missing_ok=True)
    log.write_bytes(b"\x00garbage" * 512)
    result = cli("sale", "--data-dir", shop, "--item", "CAFE", "--pay", "cash")
    assert result.code == 3 and result.err.count("\n") == 1
    assert "corrupt or not a tillbox log" in result.err
    log.unlink()
    import sqlite3

    sqlite3.connect(log).execute("CREATE TABLE x (y)")
    result = cli("log", "verify", "--data-dir", shop)
    assert result.code == 3 and "foreign SQLite file" in result.err


def test_log_verify_reports_first_bad_seq(cli, shop):
    import sqlite3

    cli("sale", "--data-dir", shop, "--item", "CAFE", "--pay", "cash")
    conn = sqlite3.connect(Path(shop) / "log.db", isolation_level=None)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET wall_ms = wall_ms + 1 WHERE seq = 4")
    result = cli("log", "verify", "--data-dir", shop)
    assert result.code == 4 and "seq 1" in result.err  # the dropped trigger comes first
    from appliance import schema

    conn.execute(schema.TRIGGERS["events_append_only_update"])
    result = cli("log", "verify", "--data-dir", shop)
    assert result.code == 4 and result.err.count("\n") == 1
    assert "log broken at seq 4" in result.err


def test_real_process_exit_codes_and_one_line_errors(shop):
    env = {**os.environ, "TILLBOX_DATA_DIR": shop}
    ok = subprocess.run(
        [*TILLBOX, "sale", "--item", "CAFE", "--pay", "cash", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert ok.returncode == 0 and '"receipt_no": 1' in ok.stdout
    bad = subprocess.run(
        [*TILLBOX, "sale", "--item", "CAFE"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--pay" in bad.stderr


def test_startup_does_not_import_hardware_or_ui_toolkits():
    code = (
        "import sys; from appliance.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('kivy', 'paho', 'serial', 'escpos', 'gpiozero', 'PIL', "
        "'nacl', 'psycopg', 'sqlite_utils') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["edge", "serve", "--stock-interval", "x"], "'x' is not a number of seconds"),
        (["edge", "serve", "--stock-interval", "1e9"], "'1e9' must be from 0 to 86400 seconds"),
        (["edge", "web", "--silent-after", "abc"], "'abc' is not a number of minutes"),
        (["edge", "web", "--silent-after", "0"], "minutes must be above 0 and at most a week"),
    ],
)
def test_a_duration_option_that_is_no_number_is_one_line(argv, message, capsys):
    """The edge's and the console's duration options share cliutil.a_number."""
    from appliance.cli import build_parser

    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*argv, "--db", "sqlite:///unused.db", "--listen", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and message in err
