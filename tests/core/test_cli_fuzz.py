"""Fuzz the CLI: whatever the arguments, tillbox.toml or catalog, the exit code is one
of the documented ones (README: 0, 1 refused, 2 usage, 3 storage, 4 broken log) and an
error is one line. "internal error" (70) must be unreachable from input.

Each example runs ``appliance.cli.main`` in-process on a fresh copy of one demo till.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import schema
from appliance.datadir import DataDir
from appliance.till import Till

from .conftest import run_cli

DOCUMENTED = {0, 1, 2, 3, 4}
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "till"
    with Till.init(DataDir(root), "fuzz-1", demo=True) as till:
        till.open_shift()
    return root


def fresh(template: Path) -> Path:
    root = Path(tempfile.mkdtemp(prefix="tillbox-fuzz-")) / "till"
    shutil.copytree(template, root)
    return root


def check(result, argv) -> None:
    assert result.code in DOCUMENTED, (argv, result)
    assert "internal error" not in result.err, (argv, result)
    if result.code:
        assert result.err.count("\n") == 1, (argv, result)


def run(root: Path, *argv: str) -> None:
    argv = (*argv, "--data-dir", str(root))
    check(run_cli(*argv), argv)


# Values TOML can hold, biased to the edges: huge and negative numbers, non-ASCII
# text, NaN and infinity, dates, nested tables and lists.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    texts,
    st.sampled_from(["", "sim://", "mqtt://h:1", "mqtt://u:p@h", "tls://h:1", "kassé-1", "a/b"]),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 1, 1)),
    st.dates(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
KNOWN_KEYS = sorted((name, key) for name, section in schema().items() for key in section.settings)


@st.composite
def configs(draw) -> dict:
    data = {"device": {"id": "fuzz-1", "tenant": "demo"}}
    for _ in range(draw(st.integers(1, 4))):
        section, key = draw(st.sampled_from(KNOWN_KEYS))
        if section == "materials":
            data.setdefault("materials", {})[draw(texts)] = {key: draw(toml_values)}
        else:
            data.setdefault(section, {})[key] = draw(toml_values)
    if draw(st.booleans()):  # an unknown key, or a whole unknown section
        data.setdefault(draw(st.sampled_from([*schema(), "extra"])), {})[draw(texts)] = 1
    if draw(st.booleans()):
        data[draw(st.sampled_from(list(schema())))] = draw(scalars)  # a value, not a table
    return data


@FUZZ
@given(data=configs())
def test_any_tillbox_toml(template, data):
    root = fresh(template)
    (root / "tillbox.toml").write_text(tomli_w.dumps(data))
    for argv in (
        ("sale", "--item", "CAFE", "--pay", "card"),
        ("catalog", "list"),
        ("device", "show", "--json"),
        ("sync", "status"),
        ("selftest", "--no-record", "--only", "broker,secrets,disk"),
    ):
        run(root, *argv)


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_tillbox_toml(template, raw):
    root = fresh(template)
    (root / "tillbox.toml").write_bytes(raw)
    run(root, "sale", "--item", "CAFE", "--pay", "cash")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=5,
)
ITEM = {"sku": "FZ-1", "name": "Fuzz", "price_minor": 100, "tax_rate": "standard"}
PROFILE = {
    "id": "eu-market",
    "name": "EU",
    "currency": "EUR",
    "prices_include_tax": True,
    "rates": {"standard": 2000},
}


@st.composite
def catalogs(draw) -> object:
    item, profile = dict(ITEM), dict(PROFILE)
    for record in (item, profile):
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from([*record, "extra"]))
            record[key] = draw(json_values | st.sampled_from(["CAFÉ", "a b", 2**70, -1]))
    catalog: object = {"version": "f", "items": [item], "tax_profiles": [profile]}
    if draw(st.integers(0, 9)) == 0:
        catalog = draw(json_values)
    return catalog


@FUZZ
@given(catalog=catalogs(), qty=st.integers(-3, 2**70))
def test_any_catalog(template, catalog, qty):
    root = fresh(template)
    path = root.parent / "catalog.json"
    path.write_text(json.dumps(catalog))
    run(root, "catalog", "apply", str(path))
    items = catalog.get("items") if isinstance(catalog, dict) else None
    first = items[0] if isinstance(items, list) and items else None
    sku = first.get("sku") if isinstance(first, dict) else None
    sku = sku if isinstance(sku, str) and sku and "\x00" not in sku else "FZ-1"
    run(root, "sale", "--item", f"{sku}:{qty}", "--pay", "cash")
    run(root, "catalog", "list", "--json")


args = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=10
) | st.sampled_from(["0", "-1", str(2**70), "CAFE", "CAFE:2", "CAFE:" + str(2**70), "1"])


@FUZZ
@given(
    command=st.sampled_from(
        [
            ("sale", "--item", 0, "--pay", "cash", "--tendered", 1),
            ("sale", "--item", 0, "--pay", 1, "--promo", 2),
            ("sale", "--item", 0, "--pay", "card", "--idempotency-key", 1),
            ("refund", "--sale", 0, "--item", 1),
            ("receipt", "show", 0),
            ("receipt", "show", 0, "--refund"),
            ("hw", "print-receipt", "--receipt", 0),
            ("log", "export", "--since", 0),
            ("log", "verify", "--since", 0),
            ("init", "--device-id", 0, "--tenant", 1),
            ("edge", "stock-set", "--db", "sqlite:///:memory:", "--sku", 0, "--qty", 1),
            (
                "edge",
                "user",
                "add",
                "--db",
                "sqlite:///:memory:",
                "--name",
                0,
                "--role",
                1,
                "--tenant",
                2,
                "--password-file",
                "/etc/hostname",
            ),
            ("edge", "web", "--db", 0, "--listen", 1, "--silent-after", 2),
        ]
    ),
    values=st.lists(args, min_size=3, max_size=3),
)
def test_any_arguments(template, command, values):
    root = fresh(template)
    if command[0] == "init":
        root = root.parent / "new"
    argv = [values[part] if isinstance(part, int) else part for part in command]
    if any(a.startswith("-h") or a.startswith("--h") for a in argv):
        return  # argparse's help (exit 0, many lines) is not an error
    run(root, *argv)
