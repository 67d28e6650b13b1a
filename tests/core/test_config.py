"""Issue 11, findings 6-8: identities, the config schema, secrets at rest.

Each test here fails on the code before the fix: a non-ASCII device id was
accepted, a wrong-typed tillbox.toml sold with exit 0, a post-commit failure
exited 70, and agent.db / a config with a password were world-readable.
"""

from __future__ import annotations

import io
import json
import stat
import sys
import tomllib

import pytest

from appliance.config import Config, ConfigError, schema, validate
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.formats.brokerurl import BrokerURL
from appliance.identifiers import is_identifier
from appliance.log import EventLog


def sales_in_log(d: DataDir) -> int:
    log = EventLog.open(d.log_path, readonly=True)
    try:
        return sum(1 for e in log.events() if e.type == "sale.completed")
    finally:
        log.close()


# -- finding 6: one ASCII identifier rule wherever a name enters -----------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["--device-id", "kassé-1"],
        ["--device-id", "a/b"],  # an MQTT topic level
        ["--device-id", "a+"],  # an MQTT wildcard
        ["--device-id", "x" * 65],
        ["--device-id", "stall-1", "--tenant", "mark#t"],
        ["--device-id", "stall-1", "--tenant", "café"],
    ],
)
def test_init_refuses_a_non_ascii_or_topic_unsafe_identity(cli, tmp_path, argv):
    d = tmp_path / "till"
    r = cli("init", "--data-dir", str(d), *argv)
    assert r.code == 1 and r.err.count("\n") == 1
    assert "A-Z a-z 0-9 - _" in r.err
    assert not d.exists() or not any(d.iterdir())  # nothing written


def test_the_identifier_rule():
    assert is_identifier("stall-042") and is_identifier("A_1") and is_identifier("x" * 64)
    for bad in ("", "kassé", "a b", "a/b", "a+b", "a#b", "a:b", "a*b", "-lead", "x" * 65, 5):
        assert not is_identifier(bad), bad


def test_catalog_refuses_a_non_ascii_sku(cli, shop, tmp_path):
    catalog = tmp_path / "c.json"
    item = {"sku": "CAFÉ", "name": "Café", "price_minor": 100, "tax_rate": "standard"}
    profile = {
        "id": "p",
        "name": "P",
        "currency": "EUR",
        "prices_include_tax": True,
        "rates": {"standard": 2000},
    }
    catalog.write_text(json.dumps({"items": [item], "tax_profiles": [profile]}))
    r = cli("catalog", "apply", str(catalog), "--data-dir", shop)
    assert r.code == 1 and "items[0] sku must be a string of A-Z" in r.err
    assert r.err.count("\n") == 1


def test_edge_enroll_refuses_a_non_ascii_device_id(cli, tmp_path):
    r = cli(
        "edge",
        "enroll",
        "--db",
        f"sqlite:///{tmp_path / 'edge.db'}",
        "--device-id",
        "kassé-1",
        "--public-key",
        "00" * 32,
    )
    assert r.code == 1 and "A-Z a-z 0-9 - _" in r.err and r.err.count("\n") == 1


def add_device_login(cli, tmp_path, tenant: str, device_id: str):
    """``tillbox edge broker add-device`` against a port where no broker runs: what is
    refused is refused before any broker is asked."""
    from edge.broker import free_port

    for name in ("admin-pw", "till-pw"):
        (tmp_path / name).write_text("secret\n")
    return cli(
        "edge", "broker", "add-device", "--broker", f"mqtt://127.0.0.1:{free_port()}",
        "--admin-password-file", str(tmp_path / "admin-pw"),
        "--password-file", str(tmp_path / "till-pw"),
        "--tenant", tenant, "--device-id", device_id,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tenant", "device_id", "named"),
    [("acme", "stall.9", "device id"), ("acme.x", "stall-9", "tenant"), ("acme", "kassé-1", "")],
)
def test_edge_broker_add_device_refuses_a_name_outside_the_rule(
    cli, tmp_path, tenant, device_id, named
):
    """The broker's identities allowed a '.' that init and edge enroll refuse: a login
    no till could ever be named by. Refused before any broker is asked (none runs here)."""
    r = add_device_login(cli, tmp_path, tenant, device_id)
    assert r.code == 1 and r.err.count("\n") == 1, r
    assert f"{named} must be a string of A-Z a-z 0-9 - _" in r.err, r.err


def test_the_region_s_name_is_refused_as_a_device_id_from_init_on(cli, tmp_path):
    """tillbox/v1/<tenant>/region/# is the region's broadcast tree: init refuses the name
    (before, only edge enroll did, so a till could be set up that no region would take),
    and so do edge enroll and the broker's logins."""
    d = tmp_path / "till"
    r = cli("init", "--data-dir", str(d), "--device-id", "region")
    assert r.code == 1 and r.err.count("\n") == 1, r
    assert "device id 'region' is reserved for the region's topics" in r.err
    assert not d.exists() or not any(d.iterdir())  # nothing written
    db = f"sqlite:///{tmp_path / 'edge.db'}"
    r = cli("edge", "enroll", "--db", db, "--device-id", "region", "--public-key", "00" * 32)
    assert r.code == 1 and "is reserved for the region's topics" in r.err, r
    r = add_device_login(cli, tmp_path, "acme", "region")
    assert r.code == 1 and "is reserved for the region's topics" in r.err, r


@pytest.mark.parametrize(
    "argv",
    [
        ["edge", "enroll", "DB", "--device-id", "stall-1", "--public-key", "00" * 32],
        ["edge", "web", "DB", "--listen", "127.0.0.1:1"],
        ["edge", "user", "add", "DB", "--name", "ann", "--role", "admin", "--password-file", "x"],
    ],
)
def test_a_database_url_with_a_password_is_refused_without_showing_it(cli, argv):
    """A command line is visible to every user of the host (ps), so the edge's and the
    console's --db refuse a password in the URL and point at ~/.pgpass instead."""
    url = "postgresql://tillbox:hunter2-secret@127.0.0.1:1/region"
    r = cli(*[a for arg in argv for a in (("--db", url) if arg == "DB" else (arg,))])
    assert r.code == 2 and r.err.count("\n") == 1, r
    assert "must not hold a password" in r.err and "~/.pgpass" in r.err
    assert "hunter2" not in r.err + r.out


def test_a_failure_after_the_commit_reports_the_sale_done(cli, shop, monkeypatch):
    """Inject the failure that a non-ASCII device id caused (UnicodeEncodeError in the
    receipt QR): the sale is durable, so the command says so and exits 0."""
    from appliance.formats import receipt as receipt_sig

    def broken(*_a, **_k):
        raise UnicodeEncodeError("ascii", "é", 0, 1, "ordinal not in range(128)")

    monkeypatch.setattr(receipt_sig, "receipt_qr_payload", broken)
    r = cli("sale", "--item", "CAFE", "--pay", "cash", "--data-dir", shop)
    assert r.code == 0, r.err
    assert r.out.startswith("sale recorded: receipt 1 (seq ")
    assert r.err.startswith("tillbox: warning: ") and r.err.count("\n") == 1
    assert "do not sell again" in r.err
    assert sales_in_log(DataDir.resolve(shop)) == 1


def test_a_terminal_that_cannot_show_the_receipt_does_not_fail_the_sale(shop, monkeypatch):
    from appliance.cli import main

    raw = io.BytesIO()
    ascii_stdout = io.TextIOWrapper(raw, encoding="ascii")  # e.g. LANG=C on an old system
    monkeypatch.setattr(sys, "stdout", ascii_stdout)
    code = main(["sale", "--item", "BRATW", "--pay", "cash", "--json", "--data-dir", shop])
    ascii_stdout.flush()
    assert code == 0
    out = json.loads(raw.getvalue().decode("ascii"))
    assert out["receipt_no"] == 1 and out["lines"][0]["name"] == "Bratwürst im Brötchen"


# -- finding 7: tillbox.toml checked against the typed schema at load ------------------------
def write_config(d: str, text: str) -> None:
    (DataDir.resolve(d).config_path).write_text(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[device]\nid = 5\ntenant = []\n",
            "[device] id must be a string of A-Z a-z 0-9 - _ (1-64 chars, starting with a "
            "letter or digit), got 5",
        ),
        ('[device]\nid = "stall-1"\ntenant = []\n', "[device] tenant must be a string"),
        ('[device]\nid = "stall-1"\n[shop]\ncolour = "red"\n', "[shop] colour is not a known"),
        ('[device]\nid = "stall-1"\n[shops]\n', "unknown section [shops]"),
        ('[device]\nid = "stall-1"\n[sync]\nwindow = "8"\n', "[sync] window must be a whole"),
        ('[device]\nid = "stall-1"\n[sync]\nwindow = 0\n', "[sync] window must be a whole"),
        (
            '[device]\nid = "stall-1"\n[payment]\ncard_offline_limit_minor = true\n',
            "[payment] card_offline_limit_minor must be a whole number",
        ),
        ('[device]\nid = "stall-1"\n[hardware]\npaper_width_mm = 1e9\n', "paper_width_mm"),
        ('[device]\nid = "stall-1"\n[materials]\nwood = 3\n', "[materials] wood must be"),
        ('[device]\ntenant = "demo"\n', "[device] id is missing"),
        ('device = "stall-1"\n', "[device] must be a section"),
    ],
)
def test_a_wrong_config_is_refused_with_the_key_named(cli, shop, text, message):
    write_config(shop, text)
    r = cli("sale", "--item", "CAFE", "--pay", "cash", "--data-dir", shop)
    assert r.code == 1, r
    assert message in r.err and r.err.count("\n") == 1 and "tillbox.toml" in r.err
    assert sales_in_log(DataDir.resolve(shop)) == 0


def test_a_pyproject_copied_over_tillbox_toml_is_refused(cli, shop):
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    write_config(shop, pyproject.read_text())
    r = cli("sale", "--item", "CAFE", "--pay", "cash", "--data-dir", shop)
    assert r.code == 1 and "unknown section [" in r.err and r.err.count("\n") == 1


def test_a_secret_is_never_echoed_in_the_error(cli, shop):
    write_config(shop, '[device]\nid = "stall-1"\n[sync]\npassword = 12345678\n')
    r = cli("sale", "--item", "CAFE", "--pay", "cash", "--data-dir", shop)
    assert r.code == 1 and "[sync] password must be" in r.err and "12345678" not in r.err


def test_a_huge_catalog_price_is_a_one_line_refusal(cli, shop, tmp_path):
    catalog = tmp_path / "c.json"
    catalog.write_text(
        json.dumps(
            {
                "items": [{"sku": "X", "name": "x", "price_minor": 2**70, "tax_rate": "s"}],
                "tax_profiles": [
                    {
                        "id": "eu-market",
                        "name": "P",
                        "currency": "EUR",
                        "prices_include_tax": True,
                        "rates": {"s": 2000},
                    }
                ],
            }
        )
    )
    r = cli("catalog", "apply", str(catalog), "--data-dir", shop)
    assert r.code == 1 and "items[0] price_minor must be a whole number 0.." in r.err
    assert r.err.count("\n") == 1


def test_reading_a_config_never_changes_it():
    config = Config(validate({"device": {"id": "stall-1"}}))
    before = json.dumps(config.data, sort_keys=True)
    ui = config.section("ui")
    ui["lang"] = "de"
    config.section("hardware")["printer"] = "none://"
    assert json.dumps(config.data, sort_keys=True) == before
    assert config.section("ui")["lang"] == "en"  # the default, from the schema
    config.update("ui", lang="de")
    assert config.section("ui")["lang"] == "de"
    with pytest.raises(ConfigError, match=r"\[ui\] lang must be"):
        config.update("ui", lang=3)


def test_every_default_passes_its_own_schema():
    for name, section in schema().items():
        for key, setting in section.settings.items():
            if setting.default is not None and not (setting.required and not setting.default):
                setting.check(setting.default), (name, key)


# -- the one broker-URL parser --------------------------------------------------------------
def test_one_broker_parser_refuses_a_password_in_the_url():
    with pytest.raises(TillError, match="password_file") as err:
        BrokerURL.parse("mqtts://stall-1:s3cret@broker.example:8883")
    assert "s3cret" not in str(err.value)
    url = BrokerURL.parse("mqtts://stall-1@broker.example")
    assert (url.host, url.port, url.tls, url.username) == ("broker.example", 8883, True, "stall-1")
    for bad in ("tls://broker.example:8883", "broker.example:1883", "mqtt://h:99999", "ws://h"):
        with pytest.raises(TillError):
            BrokerURL.parse(bad)


def test_the_selftest_and_the_agent_agree_on_a_broker_url(data_dir):
    """The self-test used to pass tls:// that the sync agent refuses."""
    from compliance.selftest import Context, check_broker
    from sync_agent import config as sync_config

    for url, agent_ok in (("tls://127.0.0.1:1", False), ("mqtt://127.0.0.1:1", True)):
        config = Config(validate({"device": {"id": "stall-1"}}))
        config.data["sync"] = {"broker": url}  # as if hand-edited past the schema
        ctx = Context(data_dir, config, None, None, 0, lambda: True)
        result = check_broker(ctx)
        assert ("bad broker address" in result.value) is not agent_ok, result
        try:
            sync_config.load({"broker": url}, None)
            accepted = True
        except TillError:
            accepted = False
        assert accepted is agent_ok


# -- finding 8: secrets at rest -------------------------------------------------------------
def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_config_with_a_password_is_not_readable_by_others(data_dir, tmp_path):
    fresh = DataDir(tmp_path / "fresh")
    fresh.root.mkdir()
    fresh.save_config(Config(validate({"device": {"id": "x"}, "sync": {"password": "pw"}})))
    assert mode(fresh.config_path) == 0o600
    config = data_dir.load_config()
    config.update("sync", password="s3cret")
    data_dir.save_config(config)
    assert mode(data_dir.config_path) & 0o007 == 0  # init made it 0644: others lose it
    # a config the provisioning made 0660 (tillbox group) keeps its group, loses others
    data_dir.config_path.chmod(0o664)
    data_dir.save_config(config)
    assert mode(data_dir.config_path) == 0o660
    assert tomllib.loads(data_dir.config_path.read_text())["sync"]["password"] == "s3cret"


def test_agent_db_is_never_readable_by_others(tmp_path):
    from sync_agent.store import AgentStore

    fresh = tmp_path / "a" / "agent.db"
    AgentStore(fresh).conn.close()
    assert mode(fresh) & 0o007 == 0
    old = tmp_path / "b" / "agent.db"
    old.parent.mkdir()
    old.write_bytes(b"")
    old.chmod(0o644)  # made by an agent before the fix
    AgentStore(old).conn.close()
    assert mode(old) == 0o640


def test_loading_the_schema_imports_no_toolkit(tmp_path):
    """Every plugin's section schema is loaded with each config: it must stay light."""
    import subprocess

    code = (
        "import sys; from appliance.config import schema; schema(); "
        "heavy = [m for m in ('kivy', 'paho', 'serial', 'escpos', 'gpiozero', 'PIL', "
        "'psycopg') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert {"hardware", "sync", "selftest", "ui", "device"} <= set(schema())
