"""The kiosk's screens, one module each with its KV rules beside it (``<screen>.kv``).

Every screen is a :class:`ui.screens.base.KScreen` built with the
:class:`ui.context.KioskContext` it works with; :data:`SCREENS` is the order the
shell adds them in (the first one is shown at start).
"""

from __future__ import annotations

from ui.screens.base import KScreen
from ui.screens.bookings import BookingsScreen
from ui.screens.engrave import EngraveScreen
from ui.screens.inspect import InspectScreen
from ui.screens.pay import PayScreen
from ui.screens.pers_pick import PersPickScreen
from ui.screens.pers_proof import PersProofScreen
from ui.screens.pers_sign import PersSignScreen
from ui.screens.pers_text import PersTextScreen
from ui.screens.receipt import ReceiptScreen
from ui.screens.refund import RefundScreen
from ui.screens.sell import SellScreen
from ui.screens.settings import SettingsScreen
from ui.screens.shift import ShiftScreen
from ui.screens.start import StartScreen

SCREENS: tuple[tuple[str, type[KScreen]], ...] = (
    ("start", StartScreen),
    ("sell", SellScreen),
    ("pay", PayScreen),
    ("receipt", ReceiptScreen),
    ("pers_pick", PersPickScreen),
    ("pers_text", PersTextScreen),
    ("pers_proof", PersProofScreen),
    ("pers_sign", PersSignScreen),
    ("engrave", EngraveScreen),
    ("refund", RefundScreen),
    ("bookings", BookingsScreen),
    ("shift", ShiftScreen),
    ("inspect", InspectScreen),
    ("settings", SettingsScreen),
)
