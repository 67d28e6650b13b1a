"""The base of every kiosk screen: built with its context, refreshed each time it is shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kivy.lang import Builder
from kivy.uix.screenmanager import Screen

if TYPE_CHECKING:
    from ui.context import KioskContext


def load_kv(module_file: str) -> None:
    """Load the KV rules that sit beside a module (``sell.py`` -> ``sell.kv``), once."""
    Builder.load_file(str(Path(module_file).with_suffix(".kv")))


class KScreen(Screen):
    def __init__(self, ctx: KioskContext, **kw: Any) -> None:
        self.ctx = ctx  # before the KV rules run: on_kv_post may use it
        super().__init__(**kw)

    def t(self, text: str) -> str:
        """``text`` in the kiosk's current language."""
        return self.ctx.t(text)

    def refresh(self) -> None:
        """Fill the screen from the session (called every time it is shown)."""

    def on_pre_enter(self, *_: Any) -> None:
        self.refresh()
