"""What every screen is given: the session, the devices, the translator, the shell.

Screens get one :class:`KioskContext` in their constructor instead of reaching for the
running app. The shell (:class:`ui.app.KioskApp`) builds it and is reached only through
the narrow :class:`Shell` protocol: navigation, pop-ups and the redraw hint.
Test instrumentation listens through :meth:`KioskContext.subscribe` (``ui.probe``):
screens announce what happened, they never write test facts themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ui import fmt

if TYPE_CHECKING:
    from appliance.stallstock import StallStock
    from appliance.sync_state import SyncView
    from appliance.till import Till
    from ui.devices import DeviceHub
    from ui.i18n import Translator
    from ui.pads import PinPad, TextPad
    from ui.session import Session

Listener = Callable[[str, dict[str, Any]], None]


def N_(text: str) -> str:  # the gettext convention: marks a string for the catalog
    return text


class Shell(Protocol):
    """The app shell as the screens see it."""

    lang: str
    k: float

    def go(self, name: str) -> None: ...
    def screen(self, name: str) -> Any: ...  # a Kivy Screen of any kind
    def mark_dirty(self) -> None: ...
    def poll_now(self) -> None: ...
    def set_language(self, lang: str) -> None: ...
    def ask_pin(
        self,
        title: str,
        then: Callable[[], None] | None,
        on_ok: Callable[[str, PinPad], None] | None = None,
    ) -> None: ...
    def ask_float(self, opened: Callable[[], None]) -> None: ...
    def ask_text(self, title: str, on_ok: Callable[[str, TextPad], None]) -> None: ...
    def ask_event(self, then: Callable[[], None] | None) -> None: ...


@dataclass
class KioskContext:
    session: Session
    hub: DeviceHub
    translate: Translator
    shell: Shell
    money_locale: str = "en"
    usb_path: str = "/media/usb0"
    # the personalised order being put together (pick -> text -> proof -> sign)
    order: dict[str, Any] = field(default_factory=dict)
    # the last status poll, for the settings screen
    device_states: dict[str, Any] = field(default_factory=dict)
    sync: SyncView | None = None
    exposure: int = 0
    # the stall's stock of each tracked SKU (appliance.stallstock), from the last poll
    stock: dict[str, StallStock] = field(default_factory=dict)
    _listeners: list[Listener] = field(default_factory=list)

    @property
    def till(self) -> Till:
        return self.session.till

    def t(self, text: str) -> str:
        """``text`` in the kiosk's current language."""
        return self.translate(text, self.shell.lang)

    def money(self, minor: int, *, whole: bool = False) -> str:
        return fmt.money(minor, self.till.profile().currency, self.money_locale, whole=whole)

    def stock_note(self, sku: str, now_ms: int) -> str:
        """What the product tile says of the stall's stock, on one line: "≤8 left · 12 min
        ago" (as of the region's snapshot that long ago). At most: the other tills' sales
        since the snapshot are not in it (appliance.stallstock). "" for a SKU whose stock
        is not tracked."""
        found = self.stock.get(sku)
        if found is None:
            return ""
        qty, synced_ms = found
        if synced_ms is None:
            return self.t("{n} here").format(n=qty) + " · " + self.t("not synced")
        minutes = max(0, now_ms - synced_ms) // 60_000
        when = self.t("just now") if minutes < 1 else self.t("{m} min ago").format(m=minutes)
        if found.oversold:
            return self.t("oversold by {n}").format(n=-qty) + " · " + when
        return self.t("≤{n} left").format(n=qty) + " · " + when

    def agent_note(self, sync: SyncView) -> str:
        """The note "sync agent not running since 14:02", in the kiosk's language."""
        if not sync.stopped_since_ms:
            return self.t("sync agent never ran here")
        return self.t("sync agent not running since") + " " + sync.stopped_at_text()

    # -- the shell ------------------------------------------------------------------------
    def go(self, name: str) -> None:
        self.shell.go(name)

    def screen(self, name: str) -> Any:  # a Kivy Screen of any kind
        return self.shell.screen(name)

    def mark_dirty(self) -> None:
        self.shell.mark_dirty()

    def poll_now(self) -> None:
        self.shell.poll_now()

    def ask_pin(
        self,
        title: str,
        then: Callable[[], None] | None,
        on_ok: Callable[[str, PinPad], None] | None = None,
    ) -> None:
        self.shell.ask_pin(title, then, on_ok)

    def ask_float(self, opened: Callable[[], None]) -> None:
        self.shell.ask_float(opened)

    def ask_text(self, title: str, on_ok: Callable[[str, TextPad], None]) -> None:
        self.shell.ask_text(title, on_ok)

    def ask_event(self, then: Callable[[], None] | None = None) -> None:
        """Open the event chooser; ``then`` runs once the cashier's answer is recorded."""
        self.shell.ask_event(then)

    def personalise(self, sku: str) -> None:
        """Start a personalised order for ``sku``: the text comes next."""
        self.order = {"sku": sku, "text": "", "material": "wood"}
        self.go("pers_text")

    # -- announcements (what happened, for whoever listens) -------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def announce(self, topic: str, **data: Any) -> None:
        for listener in self._listeners:
            listener(topic, data)
