"""Personalise, step 4: the customer's signature approves the proof (consent)."""

from __future__ import annotations

from appliance.errors import TillError
from appliance.services import consent
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class PersSignScreen(KScreen):
    def refresh(self) -> None:
        self.ids.pad.clear()
        self.ids.message.text = ""

    def accept(self) -> None:
        a = self.ctx
        pad = self.ids.pad
        if pad.ink() < 8:
            self.ids.message.text = self.t(
                "Please sign with a finger first (a tap is not a signature)."
            )
            return
        strokes = [[list(p) for p in s] for s in pad.strokes]
        try:
            order = a.order
            personalisation = consent.approve_proof(
                a.till,
                sku=order["sku"],
                text=order["text"],
                material=order.get("material", "wood"),
                gcode=order["toolpath"].gcode,
                strokes=strokes,
            )
            a.session.add(order["sku"], personalisation)
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        a.order = {}
        a.go("sell")
