"""Personalise, step 2: the text to engrave, on the on-screen keyboard."""

from __future__ import annotations

from typing import Any

from appliance.errors import TillError
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class PersTextScreen(KScreen):
    def on_kv_post(self, *_: Any) -> None:
        self.ids.keyboard.changed = self.typed

    def refresh(self) -> None:
        a = self.ctx
        order = a.order
        item = a.session.till.catalog().item(order["sku"])
        self.ids.item.text = f"{item.name}\n{a.money(item.price_minor)}"
        self.ids.keyboard.text = order.get("text", "")
        self.typed(self.ids.keyboard.text)

    def typed(self, text: str) -> None:
        self.ctx.order["text"] = text
        self.ids.text.text = text or f"[color=888888]{self.t('Type the text to engrave')}[/color]"
        self.ids.message.text = ""
        self.ctx.mark_dirty()

    def proof(self) -> None:
        a = self.ctx
        try:
            a.order["toolpath"] = a.hub.toolpath(a.order.get("text", ""))
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        a.go("pers_proof")
