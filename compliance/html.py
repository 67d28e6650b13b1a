"""index.html for the inspection bundle: one file, inline CSS, no scripts, no external assets.

Rendered on the server side (here) as plain HTML tables, so it works in any
browser, offline, with JavaScript disabled. Photos are inline thumbnails
(``data:`` URIs) with a relative link to the full file in the bundle.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#111;max-width:80em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}code,.mono{font-family:ui-monospace,monospace;font-size:.85em;
word-break:break-all}.pass{color:#060}.warn{color:#a60}.fail{color:#b00;font-weight:bold}
.note{color:#555}img{max-width:240px;border:1px solid #ccc}
"""


def _t(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(header: list[str], rows: list[list[str]]) -> str:
    """``rows`` hold already-escaped HTML cells."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _link(href: str, text: str) -> str:
    return f"<a href='{escape(href)}'>{escape(text)}</a>"


def _money(minor: int, currency: str) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{currency} {abs(minor) // 100}.{abs(minor) % 100:02d}"


def render(
    head: dict[str, Any],
    summary: dict[str, Any],
    enrollments: list[dict[str, Any]],
    files: list[str],
    personal: dict[str, Any],
    sync: dict[str, Any] | None = None,
) -> str:
    ev = head["events"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Inspection bundle {escape(head['device_id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Inspection bundle: till {escape(head['device_id'])}</h1>",
        "<p class='note'>This page shows what the bundle holds. It does not prove it: run "
        "<code>tillbox inspect verify BUNDLE.zip</code> or an independent verifier "
        "(docs/formats.md) to check the signatures and hashes.</p>",
        _table(
            ["field", "value"],
            [
                ["device id", escape(head["device_id"])],
                ["device public key", f"<code>{escape(head['public_key'])}</code>"],
                [
                    "period",
                    escape(
                        f"{head['period']['from'] or 'start'} to "
                        f"{head['period']['to'] or 'now'} (UTC days)"
                    ),
                ],
                [
                    "events",
                    escape(
                        f"seq {ev['first_seq']} to {ev['last_seq']} ({ev['count']} "
                        f"events; the log held {ev['log_tail_seq']} at export)"
                    ),
                ],
                ["hash before the period", f"<code>{escape(ev['prev_hash'])}</code>"],
                ["hash of the last event", f"<code>{escape(ev['last_hash'])}</code>"],
                ["personal data included", "yes" if head["personal_data"] else "no"],
                ["exported at (UTC)", escape(_utc(head["exported_at_ms"]))],
                ["inspector's nonce", escape(head["nonce"] or "none given")],
            ],
        ),
    ]
    parts.append("<h2>Enrollment, permits and equipment</h2>")
    if not enrollments:
        parts.append("<p>No enrollment recorded on this till.</p>")
    for enr in enrollments:
        parts.append(_enrollment(enr))
    parts.append("<h2>Self-test history</h2>")
    if not summary["selftests"]:
        parts.append("<p>No self-test in this period.</p>")
    for st in summary["selftests"]:
        p = st["payload"]
        verdict = escape(str(p.get("verdict", "")))
        parts.append(
            f"<p>seq {st['seq']}, {_t(st['wall_ms'])}: <b class='{verdict}'>{verdict}</b></p>"
        )
        rows = [
            [
                escape(c.get("name", "")),
                f"<span class='{escape(c.get('result', ''))}'>{escape(c.get('result', ''))}</span>",
                escape(str(c.get("value", ""))),
                escape(c.get("fix", "")),
                "yes" if c.get("fatal") else "",
            ]
            for c in p.get("checks", [])
        ]
        parts.append(_table(["check", "result", "measured", "fix", "fatal"], rows))
    parts.append("<h2>Sync with the region</h2>")
    sync = sync or {}
    if sync.get("segments"):
        parts.append(
            f"<p>{sync['segments']} signed segments sealed, {sync['acked']} "
            f"acknowledged by the region (every event up to seq "
            f"{sync['acked_seq']} is stored there); see sync/segments.jsonl.</p>"
        )
        if sync.get("acks"):
            parts.append(
                f"<p>{sync['acks']} of those acknowledgements are kept as the region's "
                f"signed acks (sync/acks/, checked with sync/region.pub): they prove "
                f"every event up to seq {sync['ack_proven_seq']} reached the region.</p>"
            )
    else:
        parts.append("<p>No sync records on this till (it has not synced yet, or sync is off).</p>")
    if sync.get("problem"):
        parts.append(f"<p class='warn'>{escape(sync['problem'])}</p>")
    shown_receipts = len(summary["receipts"])
    total_receipts = summary.get("receipt_count", shown_receipts)
    parts.append(
        f"<h2>Receipts ({shown_receipts} of {total_receipts} shown; receipts.jsonl holds all)</h2>"
    )
    parts.append(
        _table(
            ["receipt", "kind", "time", "total", "code", "QR payload"],
            [
                [
                    str(r["receipt_no"]),
                    "sale" if r["kind"] == "S" else "refund",
                    _t(r["wall_ms"]),
                    escape(_money(r["total_minor"], r["currency"])),
                    f"<code>{escape(r['code'])}</code>",
                    f"<code>{escape(r['payload'])}</code>",
                ]
                for r in summary["receipts"]
            ],
        )
    )
    parts.append("<h2>Events by type</h2>")
    parts.append(
        _table(
            ["type", "count"], [[escape(k), str(v)] for k, v in sorted(summary["types"].items())]
        )
    )
    shown = summary["events"]
    parts.append(f"<h2>Events ({len(shown)} of {ev['count']} shown; events.jsonl holds all)</h2>")
    parts.append(
        _table(
            ["seq", "time", "type", "payload", "hash"],
            [
                [
                    str(e["seq"]),
                    _t(e["wall_ms"]),
                    escape(e["type"]),
                    f"<code>{escape(json.dumps(e['payload'], ensure_ascii=False)[:600])}</code>",
                    f"<code>{escape(e['hash'])}</code>",
                ]
                for e in shown
            ],
        )
    )
    if personal:
        parts.append("<h2>Personal data (exported on request)</h2>")
        parts.append(
            _table(
                ["customer", "purposes", "erased", "records"],
                [
                    [
                        escape(c),
                        escape(", ".join(b["purposes"])),
                        "yes" if b["erased"] else "no",
                        f"<code>{escape(json.dumps(b['records'], ensure_ascii=False))}</code>",
                    ]
                    for c, b in sorted(personal.items())
                ],
            )
        )
    parts.append("<h2>Files in this bundle</h2><ul>")
    parts.extend(f"<li><a href='{escape(f)}'>{escape(f)}</a></li>" for f in files)
    parts.append("<li>manifest.json, manifest.sig</li></ul></body></html>\n")
    return "".join(parts)


def _enrollment(enr: dict[str, Any]) -> str:
    signed = enr.get("signed") or {}
    m = signed.get("manifest") or {}
    folder = enr["folder"]
    out = [f"<h3>Enrollment {escape(folder)}</h3>"]
    business = m.get("business", {})
    operator = m.get("operator", {})
    out.append(
        _table(
            ["field", "value"],
            [
                ["operator", escape(str(operator.get("name", "")))],
                [
                    "business",
                    escape(f"{business.get('name', '')} {business.get('registration', '')}"),
                ],
                ["address", escape(str(business.get("address", "")))],
                ["enrolled at", _t(m.get("created_wall_ms"))],
                ["public key", f"<code>{escape(str(m.get('public_key', '')))}</code>"],
                ["signature", f"<code>{escape(str(signed.get('signature', '')))}</code>"],
            ],
        )
    )
    review = enr.get("review")
    if review:
        verb = "approved" if review.get("decision") == "approve" else "rejected"
        out.append(
            f"<p><b>Region review</b>: {verb} on {_t(review.get('decided_wall_ms'))} by "
            f"{escape(str(review.get('reviewer', '')))}: {escape(str(review.get('reason', '')))}"
            f" (signed by the region key with fingerprint <code>"
            f"{escape(str(review.get('region_key_fingerprint', '')))}</code>; "
            f"{_link(f'enrollment/{folder}/review.tber', 'review.tber')})</p>"
        )
    else:
        out.append("<p><b>Region review</b>: none recorded on this till.</p>")
    att = m.get("attestation") or {}
    if att:
        out.append(
            f"<p><b>Self-attestation</b> (confirmed by "
            f"{escape(str(att.get('confirmed_by', '')))}):</p><blockquote>"
            f"{escape(str(att.get('text', '')))}</blockquote>"
        )
    permits = m.get("permits", [])
    out.append(
        _table(
            ["permit", "number", "expires", "file", "sha256"],
            [
                [
                    escape(p.get("kind", "")),
                    escape(p.get("number", "")),
                    escape(p.get("expires", "")),
                    _link(f"enrollment/{folder}/{p['file']}", p["file"]),
                    f"<code>{escape(p['sha256'])}</code>",
                ]
                for p in permits
            ],
        )
    )
    rows = []
    for ph in m.get("photos", []):
        name = ph["file"].rsplit("/", 1)[-1]
        thumb = enr["thumbs"].get(name)
        exif = enr["exif"].get(name, {})
        img = (
            f"<img alt='{escape(name)}' src='{thumb}'>"
            if thumb
            else "<span class='fail'>not a readable image</span>"
        )
        where = (
            f"{exif.get('latitude')}, {exif.get('longitude')}"
            if exif.get("latitude")
            else "no GPS tag"
        )
        when = exif.get("tags", {}).get("DateTimeOriginal", "no time tag")
        rows.append(
            [
                img,
                escape(ph.get("label", "")),
                escape(f"{when}; {where}"),
                f"<a href='enrollment/{escape(folder)}/{escape(ph['file'])}'>"
                f"{escape(ph['file'])}</a>",
                f"<code>{escape(ph['sha256'])}</code>",
            ]
        )
    out.append(_table(["photo", "label", "EXIF time; GPS", "file", "sha256"], rows))
    assets = m.get("assets", [])
    if assets:
        out.append(
            _table(
                ["asset tag", "equipment"],
                [
                    [f"<code>{escape(a['tag'])}</code>", escape(a.get("description", ""))]
                    for a in assets
                ],
            )
        )
    return "".join(out)


def _utc(wall_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(wall_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
