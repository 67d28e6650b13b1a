"""A handheld QR scanner in keyboard mode: it "types" the code's text, then Enter.

A screen that takes scans (refunds: a receipt's QR; bookings: the customer's ``TBB1``
code) attaches a :class:`KeyboardScanner` while it is shown. Key presses while a pop-up
is open (the name search's keyboard, a PIN pad) belong to that pop-up, not to a scan;
a scan longer than any code the till reads is cut (the core then refuses it in words).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.core.window import Window
from kivy.uix.modalview import ModalView

MAX_SCAN = 400  # characters: a TB2 receipt QR is about 180, a booking code under 100
ENTER_KEYS = (13, 271)  # Enter, keypad Enter


class KeyboardScanner:
    def __init__(self, on_scan: Callable[[str], None]) -> None:
        self.on_scan = on_scan
        self._text = ""

    def attach(self) -> None:
        self._text = ""
        Window.bind(on_textinput=self._typed, on_key_down=self._key)

    def detach(self) -> None:
        Window.unbind(on_textinput=self._typed, on_key_down=self._key)
        self._text = ""

    @staticmethod
    def _popup_open() -> bool:
        return any(isinstance(w, ModalView) for w in Window.children)

    def _typed(self, _window: Any, text: str) -> None:
        if not self._popup_open() and len(self._text) < MAX_SCAN:
            self._text += text

    def _key(self, _window: Any, key: int, *_: Any) -> bool:
        if key not in ENTER_KEYS:
            return False
        scanned, self._text = self._text, ""
        if not scanned or self._popup_open():
            return False
        self.on_scan(scanned)
        return True
