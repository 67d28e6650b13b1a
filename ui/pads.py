"""The pop-up pads: a PIN keypad, an amount keypad (shown as money), a text keyboard.

The caller sets ``on_ok(value, pad)``; the pad shows the caller's refusal in its
``message`` label and stays open until the caller dismisses it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.modalview import ModalView

from ui import fmt
from ui import widgets as _widgets  # noqa: F401 - the keypad and keyboard the pads hold

Builder.load_file(str(Path(__file__).with_suffix(".kv")))


def keyed(text: str, k: str, limit: int) -> str:
    """``text`` after a tap on the digit keypad: C clears, < takes the last digit back,
    a digit is added while the text is shorter than ``limit``."""
    if k == "C":
        return ""
    if k == "<":
        return text[:-1]
    return text + k if len(text) < limit else text


class PinPad(ModalView):
    title = StringProperty("")
    pin = StringProperty("")
    shown = StringProperty("")  # what the pad shows of the digits typed
    on_ok: Callable[[str, PinPad], None] | None = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ids.keypad.pressed = self.key
        self.on_pin(self, self.pin)

    def on_pin(self, _pad: PinPad, digits: str) -> None:
        self.shown = "*" * len(digits)

    def key(self, k: str) -> None:
        self.pin = keyed(self.pin, k, 12)

    def submit(self) -> None:
        if self.on_ok:
            self.on_ok(self.pin, self)


class AmountPad(PinPad):
    """The pin pad's keys for an amount (typed in minor units), shown as money."""

    def __init__(self, money: Callable[[int], str], **kw: Any) -> None:
        self.money = money  # before PinPad.__init__ shows the first amount
        super().__init__(**kw)

    def on_pin(self, _pad: PinPad, digits: str) -> None:
        self.shown = self.money(fmt.parse_minor(digits, "") or 0)
        if "message" in self.ids:
            self.ids.message.text = ""  # a refusal was about the amount before this key


class TextPad(ModalView):
    title = StringProperty("")
    value = StringProperty("")
    on_ok: Callable[[str, TextPad], None] | None = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ids.keyboard.changed = lambda text: setattr(self, "value", text)

    def submit(self) -> None:
        if self.on_ok:
            self.on_ok(self.value, self)
