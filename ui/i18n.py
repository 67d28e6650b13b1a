"""UI text through gettext: English in the code, other languages in ``ui/locale``.

Catalogs are ``ui/locale/<lang>/LC_MESSAGES/tillbox.po`` (edited by people) and the
compiled ``tillbox.mo`` next to it (read by :mod:`gettext`). ``python -m ui.i18n``
recompiles every ``.mo`` from its ``.po``; a test checks they match, so a
committed catalog can never be stale.

Screens call ``app.t("Pay", app.lang)``: naming ``app.lang`` in the KV expression
makes Kivy re-evaluate every label when the technician switches language.
"""

from __future__ import annotations

import ast
import gettext
import struct
import sys
from pathlib import Path

DOMAIN = "tillbox"
LOCALE_DIR = Path(__file__).with_name("locale")
NAMES = {"en": "English", "de": "Deutsch", "fr": "Français"}


def available() -> list[str]:
    """Languages the kiosk can show: English plus every compiled catalog."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return ["en", *[lang for lang in found if lang != "en"]]


def translation(lang: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


class Translator:
    """``gettext`` for any available language, each catalog read once (English is the msgid)."""

    def __init__(self) -> None:
        self._catalogs: dict[str, gettext.NullTranslations] = {}

    def __call__(self, text: str, lang: str) -> str:
        if lang == "en":
            return text
        if lang not in self._catalogs:
            self._catalogs[lang] = translation(lang)
        return self._catalogs[lang].gettext(text)


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (no plurals or contexts: the kiosk needs none)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None

    def flush() -> None:
        if msgid is not None and msgstr is not None:
            key, value = "".join(msgid), "".join(msgstr)
            if key and value:
                entries[key] = value

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("msgid "):
            flush()
            msgid, msgstr = [ast.literal_eval(line[6:])], None
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [ast.literal_eval(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
        elif not line or line.startswith("#"):
            continue
    flush()
    return entries


def compile_mo(entries: dict[str, str], header: str = "") -> bytes:
    """The GNU .mo bytes for ``entries`` (what msgfmt writes, without a hash table)."""
    catalog = {"": header or "Content-Type: text/plain; charset=UTF-8\n", **entries}
    keys = sorted(catalog)
    ids = [k.encode("utf-8") for k in keys]
    strs = [catalog[k].encode("utf-8") for k in keys]
    n = len(keys)
    key_table_at = 28
    value_table_at = key_table_at + 8 * n
    data_at = value_table_at + 8 * n
    offsets, blob = [], b""
    for item in ids + strs:
        offsets.append((len(item), data_at + len(blob)))
        blob += item + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, key_table_at, value_table_at, 0, 0)
    for length, at in offsets:
        out += struct.pack("<2I", length, at)
    return out + blob


def po_header(text: str) -> str:
    """The header entry (msgid "") of a .po file, which parse_po skips."""
    for block in text.split("\n\n"):
        if 'msgid ""' in block and block.strip().startswith(("msgid", "#")):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip().startswith('"')]
            return "".join(ast.literal_eval(ln) for ln in lines)
    return ""


def compile_all() -> list[Path]:
    from appliance.fsutil import atomic_write

    written = []
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        text = po.read_text(encoding="utf-8")
        mo = po.with_suffix(".mo")
        atomic_write(mo, compile_mo(parse_po(text), po_header(text)))
        written.append(mo)
    return written


if __name__ == "__main__":
    for path in compile_all():
        print(f"compiled {path}", file=sys.stderr)
