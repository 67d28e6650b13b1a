"""Personalise, step 1: pick the engravable item."""

from __future__ import annotations

from kivy.factory import Factory

from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class PersPickScreen(KScreen):
    def refresh(self) -> None:
        grid = self.ids.grid
        grid.clear_widgets()
        for item in self.ctx.session.engravable():
            b = Factory.TButton(
                text=f"[b]{item.name}[/b]\n{self.ctx.money(item.price_minor)}",
                probe=f"pers-{item.sku}",
            )
            b.bind(on_release=lambda _b, sku=item.sku: self.ctx.personalise(sku))
            grid.add_widget(b)
