"""Test-only introspection: where each tappable widget is on the screen, as a JSON file.

Enabled only when ``TILLBOX_UI_PROBE`` names a file. Widgets that carry a ``probe``
name (every button the cashier taps) are listed with their rectangle in X window
coordinates (origin top-left), their text and whether they are enabled, plus the
current screen and a few app facts (ready, last sale timings). The test suite reads
this file and then taps with real X input events at those positions, as a finger
would; nothing here can press a button.

The file is rewritten crash-safely (tmp + rename) at most every ``interval`` seconds,
and only when something changed.

:class:`Recorder` is how the running kiosk feeds it, from outside: it subscribes to
what the screens announce (:meth:`ui.context.KioskContext.announce`) and turns that
into facts, and it times the tap on "Take cash" by wrapping the pay screen's
``confirm``. The sale path itself carries no test code.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kivy.core.window import WindowBase
    from kivy.input.motionevent import MotionEvent
    from kivy.uix.widget import Widget

    from appliance.till import RefundResult, SaleResult
    from ui.app import KioskApp
    from ui.devices import PrintReport
    from ui.session import Gate

ENV = "TILLBOX_UI_PROBE"


def probe_path() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def _visible(
    widget: Widget, rect: tuple[float, float, float, float]
) -> tuple[float, float, float, float] | None:
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


def snapshot(window: WindowBase, facts: dict[str, Any]) -> dict[str, Any]:
    """Every visible widget with a ``probe`` name, in window pixels from the top-left."""
    height = window.height
    widgets: dict[str, Any] = {}

    def walk(widget: Widget) -> None:
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


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Recorder:
    """The facts the probe file shows, gathered from the kiosk's announcements."""

    def __init__(self, app: KioskApp, path: Path) -> None:
        self.app = app
        self.path = path
        self.facts: dict[str, Any] = {"ready": False}
        self.dirty = True
        self._last = ""
        self._tap: float | None = None  # when "Take cash"/"Charge card" was tapped

    @classmethod
    def install(cls, app: KioskApp, path: Path | None) -> Recorder | None:
        """A recorder listening to ``app``'s context when the probe is enabled, else None."""
        if path is None:
            return None
        recorder = cls(app, path)
        app.ctx.subscribe(recorder.heard)
        return recorder

    def start(self) -> None:
        """Once the app is built: time the pay taps, watch touches, write every tick."""
        from kivy.clock import Clock
        from kivy.core.window import Window

        pay = self.app.screen("pay")
        confirm = pay.confirm

        def timed_confirm() -> None:
            if not pay.busy:  # a second tap while the first is handled is ignored there
                self._tap = time.perf_counter()
            confirm()

        pay.confirm = timed_confirm  # KV's on_release calls root.confirm() by name
        Clock.schedule_interval(lambda _dt: self.write(), 0.05)
        Window.bind(on_touch_down=self._seen_touch, on_touch_up=self._seen_touch)

    # -- what the screens announce ---------------------------------------------------------
    def heard(self, topic: str, data: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{topic}", None)
        if handler is not None:
            handler(**data)
        self.dirty = True

    def _on_ready(self, seconds: float) -> None:
        self.facts["ready"] = True
        self.facts["first_frame_s"] = round(seconds, 3)

    def _on_gate(self, gate: Gate) -> None:
        self.facts["gate"] = {
            "blocked": gate.blocked,
            "failed": gate.failed,
            "overridden": gate.overridden,
        }

    def _on_sale(self, result: SaleResult) -> None:  # announced as soon as it is durable
        durable = time.perf_counter()
        self.facts["last_sale"] = {
            "receipt_no": result.payload["receipt_no"],
            "seq": result.event.seq,
            "replayed": result.replayed,
            "tap_to_durable_ms": _ms(durable - (self._tap or durable)),
        }

    def _on_sale_refused(self, message: str) -> None:
        self.facts["last_error"] = message

    def _on_sale_printed(self, report: PrintReport) -> None:
        sale = self.facts.get("last_sale")
        if self._tap is not None and report.handed_at is not None and sale is not None:
            sale["tap_to_printer_ms"] = _ms(report.handed_at - self._tap)
        self.facts["last_print"] = {"ok": report.ok, "receipt_no": report.receipt_no}

    def _on_engraving(self, **state: Any) -> None:
        self.facts["engraving"] = state

    def _on_refund(self, result: RefundResult) -> None:
        p = result.event.payload
        self.facts["last_refund"] = {"receipt_no": p["receipt_no"], "seq": result.event.seq}

    def _on_z_report(self, shift_no: int) -> None:
        self.facts["last_z"] = {"shift_no": shift_no}

    def _on_exported(self, path: Path) -> None:
        self.facts["last_export"] = str(path)

    def _on_status(self, info: dict[str, Any]) -> None:
        states, sync = info["states"], info["sync"]
        self.facts["status"] = {
            "online": bool(sync.online),
            "queued_events": sync.waiting,
            "agent_running": sync.agent_running,
            "devices": {k: s.ok for k, s in states.items()},
            "on_battery": bool(states.get("gpio") and states["gpio"].detail.get("on_battery")),
        }

    # -- the file --------------------------------------------------------------------------
    def _seen_touch(self, window: WindowBase, touch: MotionEvent) -> None:
        """The last touches as the app saw them (X coords), to debug lost taps."""
        seen = self.facts.setdefault("touches", [])
        seen.append(
            [
                touch.phase if hasattr(touch, "phase") else "",
                round(touch.x),
                round(window.height - touch.y),
                self.app.root.ids.sm.current,
            ]
        )
        del seen[:-6]

    def _screenshot_request(self) -> None:
        """``<probe>.shot`` names a PNG to save of the current frame.

        Taken by Kivy (glReadPixels) because some virtual X servers show a GL window's
        pixels garbled to ``xwd``; the file appears in ``shots`` when written.
        """
        from kivy.core.window import Window

        request = self.path.with_name(self.path.name + ".shot")
        try:
            target = request.read_text().strip()
            request.unlink()
        except OSError:
            return
        if target:
            written = Window.screenshot(name=target + ".tmp.png")
            if written:
                os.replace(written, target)
            self.facts.setdefault("shots", []).append(target)

    def write(self) -> None:
        # Layout settles a frame or two after a change, so snapshot every tick (with the
        # frame number, so a reader can tell a fresh snapshot from a stale one).
        from kivy.clock import Clock
        from kivy.core.window import Window
        from kivy.uix.modalview import ModalView

        if self.app.root is None:
            return
        self._screenshot_request()
        facts = {
            **self.facts,
            "screen": self.app.root.ids.sm.current,
            "lang": self.app.lang,
            "frame": Clock.frames,
            "pid": os.getpid(),
            "popup": any(isinstance(w, ModalView) for w in Window.children),
        }
        text = encode(snapshot(Window, facts))
        if text != self._last:
            self._last = text
            write(self.path, text)
