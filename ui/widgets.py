"""Reusable touch widgets: number keypad, on-screen keyboard, toolpath proof, signature pad."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.factory import Factory
from kivy.graphics import Color, Line, Rectangle
from kivy.input.motionevent import MotionEvent
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, ObjectProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.togglebutton import ToggleButton
from kivy.uix.widget import Widget


# The base widgets carry a ``probe`` name: what the test suite taps them by (ui/probe.py).
class TButton(Button):
    probe = StringProperty("")


class GoButton(TButton):
    pass


class StopButton(TButton):
    pass


class GreyButton(TButton):
    pass


class TToggle(ToggleButton):
    probe = StringProperty("")


class TLabel(Label):
    probe = StringProperty("")


class MonoLabel(Label):
    """Printer paper: monospace, never wrapped (its own size follows its text)."""

    probe = StringProperty("")


class Pill(Label):
    probe = StringProperty("")
    ok = BooleanProperty(True)


class TapPill(ButtonBehavior, Pill):
    """A status pill the cashier can tap (the event: tap to choose it)."""


class Panel(BoxLayout):
    pass


def place(box: BoxLayout, widget: Widget, shown: bool, after: int) -> bool:
    """Show ``widget`` in ``box`` with ``after`` children left of it, or take it out (no
    gap left, unlike a zero width); True when that changed anything."""
    if shown == (widget.parent is not None):
        return False
    if shown:
        box.add_widget(widget, index=len(box.children) - after)
    else:
        box.remove_widget(widget)
    return True


class Keypad(GridLayout):
    """Digits for amounts, receipt numbers and PINs; ``pressed(key)`` gets 0-9, 00, C, <."""

    pressed: Callable[[str], None] | None = None
    keys = ("7", "8", "9", "4", "5", "6", "1", "2", "3", "C", "0", "<")

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        for key in self.keys:
            cls = Factory.GreyButton if key in ("C", "<") else Factory.TButton
            button = cls(text=key, probe=f"{self._prefix()}{key}")
            button.font_size = button.font_size * 1.3
            button.bind(on_release=lambda b, k=key: self._press(k))
            self.add_widget(button)

    def _prefix(self) -> str:
        return "key-"

    def _press(self, key: str) -> None:
        if self.pressed:
            self.pressed(key)


class PinKeypad(Keypad):
    def _prefix(self) -> str:
        return "pin-"


ROWS = ("1234567890", "QWERTYUIOP", "ASDFGHJKL'", "ZXCVBNM&.-")


class Keyboard(BoxLayout):
    """A big-key keyboard; ``changed(text)`` after every key. Shift toggles lower case."""

    text = StringProperty("")
    lower = False
    max_len = 40
    changed: Callable[[str], None] | None = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._letters: list[Any] = []
        for row in ROWS:
            line = BoxLayout(spacing=3)
            for ch in row:
                b = Factory.TButton(text=ch, probe=f"kb-{ch}")
                b.bind(on_release=lambda _b, c=ch: self.type(c))
                line.add_widget(b)
                if ch.isalpha():
                    self._letters.append(b)
            self.add_widget(line)
        line = BoxLayout(spacing=3)
        for label, probe, action, weight in (
            ("Aa", "kb-shift", self.toggle_case, 1),
            ("space", "kb-space", lambda: self.type(" "), 4),
            ("<-", "kb-back", self.backspace, 1.5),
            ("CLR", "kb-clear", self.clear, 1),
        ):
            b = Factory.GreyButton(text=label, probe=probe, size_hint_x=weight)
            b.bind(on_release=lambda _b, a=action: a())
            line.add_widget(b)
        self.add_widget(line)

    def type(self, ch: str) -> None:
        if len(self.text) < self.max_len:
            self.text += ch.lower() if self.lower and ch.isalpha() else ch
            self._changed()

    def backspace(self) -> None:
        self.text = self.text[:-1]
        self._changed()

    def clear(self) -> None:
        self.text = ""
        self._changed()

    def toggle_case(self) -> None:
        self.lower = not self.lower
        for b in self._letters:
            b.text = b.text.lower() if self.lower else b.text.upper()

    def _changed(self) -> None:
        if self.changed:
            self.changed(self.text)


class ProofView(Widget):
    """The toolpath drawn to scale inside the work area (mm -> pixels, one scale both ways)."""

    probe = StringProperty("")
    toolpath = ObjectProperty(None, allownone=True)
    area = ObjectProperty(None, allownone=True)
    done_fraction = ObjectProperty(0.0)

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.bind(
            pos=self.redraw,
            size=self.redraw,
            toolpath=self.redraw,
            area=self.redraw,
            done_fraction=self.redraw,
        )

    def scale(self) -> float:
        """Pixels per millimetre (the same on both axes, so the proof is to scale)."""
        if self.area is None:
            return 1.0
        return min(self.width / self.area.width_mm, self.height / self.area.height_mm) * 0.95

    def redraw(self, *_: object) -> None:
        self.canvas.clear()
        if self.area is None:
            return
        s = self.scale()
        w, h = self.area.width_mm * s, self.area.height_mm * s
        x0, y0 = self.x + (self.width - w) / 2, self.y + (self.height - h) / 2
        ox, oy = self.area.origin_x_mm, self.area.origin_y_mm
        with self.canvas:
            Color(0.87, 0.72, 0.5, 1)  # the blank (wood)
            Rectangle(pos=(x0, y0), size=(w, h))
            Color(0.6, 0.45, 0.3, 1)
            m = self.area.margin_mm * s
            Line(rectangle=(x0 + m, y0 + m, w - 2 * m, h - 2 * m), dash_length=4, dash_offset=4)
            if self.toolpath is not None:
                polylines = self.toolpath.polylines
                cut = int(len(polylines) * float(self.done_fraction))
                for index, pl in enumerate(polylines):
                    if index < cut:
                        Color(0.1, 0.1, 0.1, 1)
                    else:
                        Color(0.55, 0.1, 0.05, 1 if not self.done_fraction else 0.45)
                    points = []
                    for x, y in pl:
                        points += [x0 + (x - ox) * s, y0 + (y - oy) * s]
                    if len(points) >= 4:
                        Line(points=points, width=1.4)


class SignaturePad(Widget):
    """Finger strokes, kept as integer points in a 0..1000 box (what is stored)."""

    probe = StringProperty("")
    strokes = ListProperty([])

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._line: Line | None = None
        self.bind(pos=self.redraw, size=self.redraw)

    def redraw(self, *_: object) -> None:
        self.canvas.clear()
        with self.canvas:
            Color(1, 1, 1, 1)
            Rectangle(pos=self.pos, size=self.size)
            Color(0.6, 0.6, 0.65, 1)
            Line(
                points=[
                    self.x + 20,
                    self.y + self.height * 0.25,
                    self.right - 20,
                    self.y + self.height * 0.25,
                ],
                width=1,
            )
            Color(0.05, 0.05, 0.3, 1)
            for stroke in self.strokes:
                pts = []
                for px, py in stroke:
                    pts += [self.x + px * self.width / 1000, self.y + py * self.height / 1000]
                if len(pts) >= 4:
                    Line(points=pts, width=2)

    def _norm(self, touch: MotionEvent) -> tuple[int, int]:
        nx = int(round((touch.x - self.x) * 1000 / max(1, self.width)))
        ny = int(round((touch.y - self.y) * 1000 / max(1, self.height)))
        return max(0, min(1000, nx)), max(0, min(1000, ny))

    def on_touch_down(self, touch: MotionEvent) -> bool:
        if not self.collide_point(*touch.pos):
            return False
        touch.grab(self)
        self.strokes.append([self._norm(touch)])
        return True

    def on_touch_move(self, touch: MotionEvent) -> bool:
        if touch.grab_current is not self:
            return False
        point = self._norm(touch)
        if self.strokes and self.strokes[-1][-1] != point:
            self.strokes[-1].append(point)
            self.redraw()
        return True

    def on_touch_up(self, touch: MotionEvent) -> bool:
        if touch.grab_current is not self:
            return False
        touch.ungrab(self)
        self.redraw()
        return True

    def clear(self) -> None:
        self.strokes = []
        self.redraw()

    def ink(self) -> int:
        """How many points were drawn (a tap is not a signature)."""
        return sum(len(s) for s in self.strokes)


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
