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
