"""Charts drawn on the server as SVG: no script, nothing fetched, readable on a phone.

One kind is enough for every page: horizontal bars, one per row, with the label on the
left and the value printed at the bar's end (so the numbers are in the page's text, not
only in its geometry). The SVG scales to its container through its viewBox. Labels are
escaped: they come from the data (SKUs, stall names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 560
ROW = 26
LABEL_W = 160
VALUE_W = 110


def bar_chart(
    bars: Sequence[tuple[str, int]],
    title: str,
    shown: Callable[[int], str] = str,
) -> Markup:
    """An SVG of one bar per (label, value); negative values draw to the left of zero."""
    if not bars:
        return Markup("")
    height = ROW * len(bars) + 8
    top = max(max(v for _, v in bars), 0)
    bottom = min(min(v for _, v in bars), 0)
    span = (top - bottom) or 1
    plot = WIDTH - LABEL_W - VALUE_W
    zero = LABEL_W + plot * (-bottom) / span
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(bars):
        y = 4 + i * ROW
        w = plot * abs(value) / span
        x = zero if value >= 0 else zero - w
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<text x="{LABEL_W - 6}" y="{y + 17}" text-anchor="end" class="label">'
            f"{escape(short or '(none)')}</text>"
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 1):.1f}" height="{ROW - 8}" '
            f'class="{"bar" if value >= 0 else "bar neg"}"/>'
            f'<text x="{zero + (w if value >= 0 else 0) + 6:.1f}" y="{y + 17}" class="value">'
            f"{escape(shown(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


COLUMN_W = 22
COLUMNS_H = 170
AXIS_H = 34


def column_chart(
    columns: Sequence[tuple[str, str, int]],
    title: str,
) -> Markup:
    """An SVG of one column per (label, group, value): a count over time (footfall per
    hour: the label is the hour, the group the day, written under its first column).
    Every column is drawn, a zero as a thin line, so a lull shows as a gap."""
    if not columns:
        return Markup("")
    width = max(WIDTH, 8 + COLUMN_W * len(columns))
    base = COLUMNS_H - AXIS_H
    peak = max(max(v for _, _, v in columns), 1)
    parts = [
        f'<svg class="chart columns" width="{width}" height="{COLUMNS_H}" '
        f'viewBox="0 0 {width} {COLUMNS_H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    previous = None
    for i, (label, group, value) in enumerate(columns):
        x = 4 + i * COLUMN_W
        h = (base - 16) * max(value, 0) / peak
        parts.append(
            f'<rect x="{x + 2}" y="{base - max(h, 1):.1f}" width="{COLUMN_W - 4}" '
            f'height="{max(h, 1):.1f}" class="bar"><title>{escape(group)} {escape(label)}: '
            f"{value}</title></rect>"
            f'<text x="{x + COLUMN_W / 2:.1f}" y="{base + 13}" text-anchor="middle" '
            f'class="label">{escape(label)}</text>'
        )
        if value:
            parts.append(
                f'<text x="{x + COLUMN_W / 2:.1f}" y="{base - h - 3:.1f}" text-anchor="middle" '
                f'class="value">{value}</text>'
            )
        if group != previous:
            parts.append(f'<text x="{x + 2}" y="{base + 28}" class="label">{escape(group)}</text>')
            previous = group
    parts.append("</svg>")
    return Markup("".join(parts))
