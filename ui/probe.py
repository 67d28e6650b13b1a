"""Test-only introspection: where each tappable widget is on the screen, as a JSON file.

Enabled only when ``TILLBOX_UI_PROBE`` names a file. Widgets that carry a ``probe``
name (every button the cashier taps) are listed with their rectangle in X window
coordinates (origin top-left), their text and whether they are enabled, plus the
current screen and a few app facts (ready, last sale timings). The test suite reads
this file and then taps with real X input events at those positions, as a finger
would; nothing here can press a button.

The file is rewritten crash-safely (tmp + rename) at most every ``interval`` seconds,
and only when something changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV = "TILLBOX_UI_PROBE"


def probe_path() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def _visible(widget: Any, rect: tuple[float, float, float, float]):  # noqa: ANN401, ANN202
    """The part of ``rect`` (window coords) inside every scrolling ancestor, or None."""
    from kivy.uix.scrollview import ScrollView

    x0, y0, x1, y1 = rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3]
    parent = widget.parent
    while parent is not None and parent is not parent.parent:
        if isinstance(parent, ScrollView):
            px, py = parent.to_window(parent.x, parent.y)
            x0, y0 = max(x0, px), max(y0, py)
            x1, y1 = min(x1, px + parent.width), min(y1, py + parent.height)
            if x1 <= x0 or y1 <= y0:
                return None
        parent = parent.parent
    return x0, y0, x1 - x0, y1 - y0


def snapshot(window: Any, facts: dict[str, Any]) -> dict[str, Any]:  # noqa: ANN401
    """Every visible widget with a ``probe`` name, in window pixels from the top-left."""
    height = window.height
    widgets: dict[str, Any] = {}

    def walk(widget: Any) -> None:  # noqa: ANN401
        if widget.opacity <= 0:
            return  # hidden, with everything in it
        name = getattr(widget, "probe", "")
        if name and widget.width > 0 and widget.height > 0:
            x, y = widget.to_window(widget.x, widget.y)
            seen = _visible(widget, (x, y, widget.width, widget.height))
            if seen is not None:
                vx, vy, vw, vh = seen
                widgets[name] = {
                    "x": round(vx),
                    "y": round(height - vy - vh),
                    "w": round(vw),
                    "h": round(vh),
                    "cx": round(vx + vw / 2),
                    "cy": round(height - vy - vh / 2),
                    "text": str(getattr(widget, "text", "")),
                    "disabled": bool(widget.disabled),
                    "state": str(getattr(widget, "state", "")),
                }
        for child in widget.children:
            walk(child)

    from kivy.uix.modalview import ModalView

    # Window.children[0] is the topmost; an open pop-up takes every touch, so only it counts.
    modals = [c for c in window.children if isinstance(c, ModalView)]
    for child in modals[:1] or window.children:
        walk(child)
    return {"window": {"w": window.width, "h": height}, "widgets": widgets, **facts}


def encode(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
