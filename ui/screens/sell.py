"""The sell screen: category tabs, product grid, the cart, promo code, running total."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from appliance.errors import TillError
from ui.pads import TextPad
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class CartRow(BoxLayout):
    label = StringProperty("")
    amount = StringProperty("")
    index = NumericProperty(0)
    personalised = BooleanProperty(False)
    screen = ObjectProperty(None)


class SellScreen(KScreen):
    category = StringProperty("all")
    promo = StringProperty("")
    can_pay = BooleanProperty(False)
    show_open_shift = BooleanProperty(False)

    def on_kv_post(self, *_: Any) -> None:
        self._built_for = None

    def build_catalog(self) -> None:
        session = self.ctx.session
        tabs = self.ids.tabs
        tabs.clear_widgets()
        for cat in ["all", *session.categories()]:
            b = Factory.TToggle(
                text=self.t("All") if cat == "all" else self.t(cat.capitalize()),
                group="cat",
                probe=f"tab-{cat}",
                allow_no_selection=False,
                state="down" if cat == self.category else "normal",
            )
            b.font_size = self.ctx.shell.k * 15
            b.bind(on_release=lambda _b, c=cat: self.pick(c))
            tabs.add_widget(b)
        grid = self.ids.grid
        grid.clear_widgets()
        items = session.products(self.category)
        grid.cols = 4 if len(items) > 6 else 3
        self._tiles = {}
        for item in items:
            label = f"[b]{item.name}[/b]\n{self.ctx.money(item.price_minor)}"
            b = Factory.TButton(probe=f"item-{item.sku}")
            b.font_size = b.font_size * 0.85
            if item.engravable:  # small, on the price's line: the tile keeps a line for stock
                label += f" [size={int(b.font_size * 0.75)}][i]{self.t('engraved')}[/i][/size]"
            b.text = label
            b.bind(on_release=lambda _b, sku=item.sku, eng=item.engravable: self.add(sku, eng))
            grid.add_widget(b)
            self._tiles[item.sku] = (b, label)
        self.show_stock()
        for _ in range(max(0, 12 - len(items)) if len(items) > 6 else 0):
            grid.add_widget(Factory.Widget())
        self._built_for = (self.category, self.ctx.shell.lang)

    def show_stock(self) -> None:
        """Each tile's line of the stall's stock, from the last status poll (every few
        seconds: another till's sale reaches this one through the region)."""
        now_ms = int(time.time() * 1000)
        for sku, (button, label) in getattr(self, "_tiles", {}).items():
            note = self.ctx.stock_note(sku, now_ms)
            text = f"{label}\n[size={int(button.font_size * 0.75)}]{note}[/size]" if note else label
            if button.text != text:
                button.text = text
        self.ctx.mark_dirty()

    def pick(self, category: str) -> None:
        self.category = category
        self.build_catalog()

    def refresh(self) -> None:
        if getattr(self, "_built_for", None) != (self.category, self.ctx.shell.lang):
            self.build_catalog()
        self.show_cart()

    def add(self, sku: str, engravable: bool) -> None:
        if engravable:
            self.ctx.personalise(sku)
            return
        self._do(lambda: self.ctx.session.add(sku))

    def bump(self, index: int, delta: int) -> None:
        self._do(lambda: self.ctx.session.bump(index, delta))

    def remove(self, index: int) -> None:
        self._do(lambda: self.ctx.session.remove(index))

    def clear(self) -> None:
        self._do(self.ctx.session.clear)

    def _do(self, action: Callable[[], None]) -> None:
        self.ids.message.text = ""
        try:
            action()
        except TillError as exc:
            self.ids.message.text = str(exc)
        self.show_cart()

    def open_shift(self) -> None:
        self.ids.message.text = ""
        self.ctx.ask_float(self.show_cart)

    def enter_promo(self) -> None:
        session = self.ctx.session

        def ok(code: str, pad: TextPad) -> None:
            try:
                session.set_promo(code)
            except TillError as exc:
                pad.ids.message.text = str(exc)
                return
            pad.dismiss()
            self.show_cart()

        self.ctx.ask_text(self.t("Promo code"), ok)

    def show_cart(self) -> None:
        a = self.ctx
        session = a.session
        self.promo = session.promo or ""
        self.show_open_shift = session.shift() is None
        cart = self.ids.cart
        cart.clear_widgets()
        try:
            quote = session.quote()
        except TillError as exc:
            quote = None
            self.ids.message.text = str(exc)
        if quote is None:
            self.ids.totals.text = self.t("Tap a product to add it.") if not session.cart else ""
            self.ids.total.text = a.money(0)
            self.can_pay = False
            a.mark_dirty()
            return
        for index, line in enumerate(quote.lines):
            label = f"{line.qty} x {line.name}"
            if line.personalisation:
                label += f' "{line.personalisation.get("text", "")}"'
            cart.add_widget(
                Factory.CartRow(
                    label=label,
                    amount=a.money(line.gross_minor),
                    index=index,
                    screen=self,
                    personalised=line.personalisation is not None,
                )
            )
        parts = []
        if quote.discount_minor:
            parts.append(f"{self.t('Discount')} -{a.money(quote.discount_minor)}")
        for tax in quote.taxes:
            parts.append(f"{self.t('Tax')} {tax['rate']} {a.money(tax['tax_minor'])}")
        self.ids.totals.text = "   ".join(parts)
        self.ids.total.text = f"{self.t('Total')} {a.money(quote.total_minor)}"
        self.can_pay = True
        a.mark_dirty()

    def pay(self) -> None:
        self.ctx.go("pay")
