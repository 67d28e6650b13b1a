"""tillbox.toml: one typed schema per section, every default in one place.

The core declares its own sections here; each plugin package declares the sections
it owns in a ``SECTIONS`` mapping named by the ``tillbox.config`` entry point
(drivers: ``[hardware]`` ``[gpio]`` ...; sync_agent: ``[sync]``). :func:`validate`
checks a whole file against all of them when it is loaded, so a wrong type, a value
out of range, an unknown key or an unknown section is refused at once with one line
that names it, instead of surfacing later as a crash:

    tillbox.toml: [device] id must be a string of A-Z a-z 0-9 - _ (...), got 5

Reading never changes a :class:`Config`: :meth:`Config.section` returns a new dict
(the defaults overlaid with the file's values). Changes go through
:meth:`Config.update`, which checks them against the same schema.

The catalog (:mod:`appliance.catalog`) is checked with the same :class:`Setting` kinds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from appliance.errors import TillError
from appliance.formats.canonical import MAX_SAFE_INT
from appliance.identifiers import IDENTIFIER_RULE, is_identifier, shown
from appliance.plugins import installed

ENTRY_POINT_GROUP = "tillbox.config"
MAX_TEXT = 4096  # no setting needs more; a bigger value is a mistake (or a pasted file)


class ConfigError(TillError):
    """tillbox.toml (or a catalog) does not fit the schema; the message names the key."""


@dataclass(frozen=True)
class Setting:
    """One key: its kind, its default and its bounds.

    kinds: ``text`` (one line), ``ident`` (:mod:`appliance.identifiers`), ``int``,
    ``float`` (a TOML integer is accepted), ``bool``, ``text_list``, ``broker``
    (:mod:`appliance.formats.brokerurl`, or empty), ``int_map`` (text keys, int values),
    ``text_map`` (text keys and values), ``optional_text`` (text or absent/None).
    """

    kind: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    secret: bool = False  # never shown in an error; marks the file as holding a secret
    allow_empty: bool = True

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind == "ident":
            return IDENTIFIER_RULE
        if self.kind in ("int", "float"):
            number = "a whole number" if self.kind == "int" else "a number"
            low = "" if self.min is None else _number(self.min)
            high = "" if self.max is None else _number(self.max)
            return f"{number} {low}..{high}" if low or high else number
        return {
            "text": "a single-line text in quotes",
            "optional_text": "a single-line text in quotes",
            "bool": "true or false",
            "text_list": "a list of texts in quotes",
            "broker": 'a broker URL like "mqtts://HOST:8883" (no password in it)',
            "int_map": "a table of whole numbers",
            "text_map": "a table of texts",
        }[self.kind]

    def check(self, value: Any) -> Any:
        """The value, normalised (``float`` for a float setting); ValueError when wrong."""
        kind = self.kind
        if kind == "optional_text" and value is None:
            return None
        if kind in ("text", "optional_text", "broker"):
            ok = isinstance(value, str) and len(value) <= MAX_TEXT
            ok = ok and not any(c in value for c in "\r\n\0")
            ok = ok and (self.allow_empty or bool(value.strip()))
            if ok and self.choices:
                ok = value in self.choices
            if ok and kind == "broker" and value:
                from appliance.formats.brokerurl import BrokerURL

                try:
                    BrokerURL.parse(value)
                except TillError:
                    ok = False
        elif kind == "ident":
            ok = is_identifier(value)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind in ("int", "float"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            if kind == "float":
                ok = ok or (isinstance(value, float) and math.isfinite(value))
            ok = ok and (self.min is None or value >= self.min)
            ok = ok and (self.max is None or value <= self.max)
            if ok and kind == "float":
                value = float(value)
        elif kind == "text_list":
            ok = isinstance(value, list) and all(
                isinstance(v, str) and len(v) <= MAX_TEXT for v in value
            )
        elif kind in ("int_map", "text_map"):
            item = Setting("int" if kind == "int_map" else "text", min=self.min, max=self.max)
            ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
            if ok:
                try:
                    value = {k: item.check(v) for k, v in value.items()}
                except ValueError:
                    ok = False
        else:  # pragma: no cover - a schema bug, caught by the schema's own test
            raise AssertionError(f"unknown setting kind {kind!r}")
        if not ok:
            got = "a secret value" if self.secret else shown(value)
            if kind == "broker":  # the parser's own words say what is wrong with it
                raise ValueError(
                    f"must look like mqtts://broker.example:8883 (no password in it), got {got}"
                )
            raise ValueError(f"must be {self.describe()}, got {got}")
        return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Section:
    """The keys of one ``[section]``; with ``named_tables`` each ``[section.NAME]`` has them."""

    settings: Mapping[str, Setting]
    named_tables: bool = False

    def defaults(self) -> dict[str, Any]:
        if self.named_tables:
            return {}
        return {k: s.default for k, s in self.settings.items()}


def _text(default: str = "", **kw: Any) -> Setting:
    return Setting("text", default, **kw)


_MINOR = {"min": 0, "max": MAX_SAFE_INT}

# The core's own sections. Plugins add theirs through the entry point.
CORE_SECTIONS: dict[str, Section] = {
    "device": Section(
        {
            "id": Setting("ident", "", required=True),
            "tenant": Setting("ident", "demo"),
            "timezone": _text(),
        }
    ),
    "shop": Section(
        {
            "name": _text("tillbox demo stall"),
            "location": _text(),
            "permit": _text(),
            "tax_profile": _text("eu-market", allow_empty=False),
            "locale": _text("en"),
            "receipt_footer": _text("Thank you!"),
        }
    ),
    "payment": Section(
        {
            # Card payments taken while offline are a risk the merchant carries;
            # these caps bound it per transaction and per device until synced.
            "card_offline_limit_minor": Setting("int", 10000, **_MINOR),
            "card_offline_device_limit_minor": Setting("int", 50000, **_MINOR),
        }
    ),
    "location": Section(
        {
            "latitude": Setting("float", 0.0, min=-90, max=90),
            "longitude": Setting("float", 0.0, min=-180, max=180),
        }
    ),
}

# What `tillbox init` writes into a new tillbox.toml, so a technician sees the main
# knobs; every other key takes its default from the schema.
INITIAL_SECTIONS = ("device", "shop", "payment", "hardware", "sync", "location")
INITIAL_SYNC_KEYS = ("broker", "segment_max_events", "segment_max_age_s")


@cache
def schema() -> dict[str, Section]:
    """Every section: the core's and each installed plugin's."""
    sections = dict(CORE_SECTIONS)
    for entry in installed(ENTRY_POINT_GROUP):
        for name, section in entry.load().items():
            if name in sections:  # pragma: no cover - two owners of one section
                raise AssertionError(f"config section [{name}] declared twice ({entry.name})")
            sections[name] = section
    return sections


def _name(key: str) -> str:
    """A key or section name as an error shows it: as is when plain, else quoted
    (a name with a newline or a control character must not break the one-line error)."""
    return key if key.isascii() and key.isprintable() and key.strip() == key and key else repr(key)


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}; fix the file")


def validate(data: Any, where: str = "tillbox.toml") -> dict[str, dict[str, Any]]:
    """The file's own values, checked and normalised; ConfigError names the first bad key."""
    sections = schema()
    if not isinstance(data, dict):
        raise _fail(where, "must be a TOML document of [sections]")
    out: dict[str, dict[str, Any]] = {}
    for name, values in data.items():
        if name not in sections:
            known = ", ".join(f"[{s}]" for s in sorted(sections))
            raise _fail(where, f"unknown section [{_name(name)}] (known: {known})")
        if not isinstance(values, dict):
            raise _fail(where, f"[{name}] must be a section (a [{name}] header), not a value")
        section = sections[name]
        if section.named_tables:
            out[name] = {}
            for table, inner in values.items():
                if not isinstance(inner, dict):
                    table = _name(table)
                    raise _fail(where, f"[{name}] {table} must be a [{name}.{table}] table")
                label = f"{name}.{_name(table)}"
                out[name][table] = _check_keys(where, label, section.settings, inner)
        else:
            out[name] = _check_keys(where, name, section.settings, values)
    device = out.get("device", {})
    if "id" not in device:
        raise _fail(where, "[device] id is missing (the till's id, set by `tillbox init`)")
    return out


def _check_keys(
    where: str, label: str, settings: Mapping[str, Setting], values: dict[str, Any]
) -> dict[str, Any]:
    checked = {}
    for key, value in values.items():
        if key not in settings:
            known = ", ".join(sorted(settings))
            raise _fail(where, f"[{label}] {_name(key)} is not a known setting (known: {known})")
        try:
            checked[key] = settings[key].check(value)
        except ValueError as exc:
            raise _fail(where, f"[{label}] {key} {exc}") from None
    return checked


@dataclass
class Config:
    """A till's configuration: the file's values over the schema's defaults."""

    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def initial(cls, device_id: str, tenant: str) -> Config:
        """What `tillbox init` writes: the main sections with their defaults spelled out."""
        sections = schema()
        data = {name: sections[name].defaults() for name in INITIAL_SECTIONS if name in sections}
        if "sync" in data:
            data["sync"] = {k: data["sync"][k] for k in INITIAL_SYNC_KEYS if k in data["sync"]}
        config = cls(validate(data | {"device": {"id": device_id, "tenant": tenant}}))
        return config

    def section(self, name: str) -> dict[str, Any]:
        """A new dict: defaults, then the file's values. Changing it changes nothing."""
        known = schema().get(name)
        base = known.defaults() if known else {}
        values = self.data.get(name, {})
        if known and known.named_tables:
            return {table: dict(inner) for table, inner in values.items()}
        return {**base, **values}

    def update(self, section: str, /, **values: Any) -> None:
        """Set keys of one section, checked against the schema (ConfigError when wrong)."""
        merged = {k: dict(v) for k, v in self.data.items()}
        merged.setdefault(section, {}).update(values)
        self.data = validate(merged)

    def unset(self, section: str, /, *keys: str) -> None:
        """Remove keys from the file's section (they take their defaults again)."""
        self.data = {
            s: {k: v for k, v in values.items() if s != section or k not in keys}
            for s, values in self.data.items()
        }

    @property
    def device_id(self) -> str:
        return self.data["device"]["id"]

    def holds_secret(self) -> bool:
        """True when the file itself holds a secret (e.g. an inline [sync] password)."""
        sections = schema()
        for name, values in self.data.items():
            settings = sections[name].settings if name in sections else {}
            if any(settings.get(k, Setting("text")).secret and v for k, v in values.items()):
                return True
        return False
