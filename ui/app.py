"""The kiosk's app shell: the screen manager, status bar, navigation and pop-ups.

Import this module only after :func:`ui.boot.prepare` has set Kivy's environment and
window size (``tillbox kiosk`` does). The shell opens the till, the session and the
device hub, builds one :class:`ui.context.KioskContext` and gives it to every screen
(``ui/screens/``, one module each); screens never reach for the running app. Device
work runs on the hub's workers and comes back through ``Clock.schedule_once``.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from appliance import sdnotify
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.techpin import verify_pin
from appliance.till import Till
from ui import fmt, i18n, probe
from ui.context import N_, KioskContext
from ui.devices import DeviceHub
from ui.eventchooser import EventChooser, event_pill
from ui.pads import AmountPad, PinPad, TextPad
from ui.screens import SCREENS
from ui.session import Session
from ui.widgets import place

NO_PIN = N_("No technician PIN is set; run `tillbox kiosk --set-technician-pin`.")

Builder.load_file(str(__file__).removesuffix(".py") + ".kv")


# -- chrome -------------------------------------------------------------------------------
class StatusBar(BoxLayout):
    def show(self, ctx: KioskContext, info: dict[str, Any]) -> None:
        t = ctx.t
        sync = info.get("sync")
        ids = self.ids
        if sync is not None:  # appliance.sync_state.SyncView
            waiting = sync.waiting
            word = t("Online") if sync.online else t("Offline")
            text = f"{word} · {waiting} " + t("waiting to sync")
            if not sync.agent_running:
                text += " · " + ctx.agent_note(sync)
            elif waiting and sync.drain_estimate_s is not None:
                text += f" · ~{int(sync.drain_estimate_s) + 1} s"
            ids.sync.text = text
            ids.sync.ok = bool(sync.online)
        states = info.get("states", {})
        for kind, label in (
            ("printer", N_("Printer")),
            ("engraver", N_("Engraver")),
            ("camera", N_("Camera")),
        ):
            state = states.get(kind)
            pill = ids[kind]
            if state is None:
                continue
            configured = state.detail.get("configured", True)
            pill.ok = state.ok or not configured
            mark = t("OK") if state.ok else ("-" if not configured else "!")
            pill.text = f"{t(label)} {mark}"
        gpio = states.get("gpio")
        if gpio is not None:
            battery = bool(gpio.detail.get("on_battery"))
            ids.power.ok = gpio.ok and not battery
            ids.power.text = (
                t("On battery") if battery else (t("Mains") if gpio.ok else t("Power ?"))
            )
        self.show_event(ctx)
        shift = ctx.session.shift()
        ids.shift.text = (t("Shift") + f" {shift}") if shift else t("No shift")
        ids.shift.ok = shift is not None

    def on_kv_post(self, *_: object) -> None:
        self._event = self.ids.event.__self__  # KV ids are weak; the pill comes and goes

    def show_event(self, ctx: KioskContext) -> None:
        """The event a sale made now belongs to; no pill on a till without a schedule."""
        shown, self._event.text, self._event.ok = event_pill(ctx)
        if place(self, self._event, shown, after=1):
            self.ids.sync.size_hint_x = 3.2 if shown else 3.6


class NavBar(BoxLayout):
    def on_kv_post(self, *_: object) -> None:
        self._bookings = self.ids.bookings.__self__

    def show_bookings(self, shown: bool) -> None:
        """The Bookings button, after Refund, once the till holds the region's bookings."""
        place(self, self._bookings, shown, after=3)


class Root(BoxLayout):
    pass


# -- the app ------------------------------------------------------------------------------
class KioskApp(App):
    title = "tillbox kiosk"
    k = NumericProperty(1.0)  # scale: 1.0 on the 800x480 display
    lang = StringProperty("en")

    def __init__(
        self, data_dir: DataDir, lang: str | None = None, started: float | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        # Device workers (and the in-process simulators) wait on sockets and ptys; a short
        # GIL switch interval hands them the interpreter sooner while the UI thread draws.
        sys.setswitchinterval(0.001)
        self.data_dir = data_dir
        self.started = started or time.perf_counter()
        self.till = Till.open(data_dir)
        self.session = Session(self.till)
        self.hub = DeviceHub(data_dir, lambda fn: Clock.schedule_once(lambda _dt: fn(), 0))
        ui_config = self.till.config.section("ui")
        self.lang = lang or str(ui_config.get("lang", "en"))
        self.translate = i18n.Translator()
        self.ctx = KioskContext(
            session=self.session,
            hub=self.hub,
            translate=self.translate,
            shell=self,
            money_locale=str(self.till.config.section("shop").get("locale", "en")),
            usb_path=str(ui_config.get("usb_path", "/media/usb0")),
        )
        self._status_info: dict[str, Any] = {}
        self._polling = False
        self._recorder = probe.Recorder.install(self, probe.probe_path())

    # -- helpers used by KV ---------------------------------------------------------------
    def t(self, text: str, lang: str | None = None) -> str:
        return self.translate(text, lang or self.lang)

    def money(self, minor: int, *, whole: bool = False) -> str:
        return self.ctx.money(minor, whole=whole)

    def pin_hash(self) -> str:
        return str(self.data_dir.load_config().section("ui").get("technician_pin_hash", ""))

    def screen(self, name: str) -> Screen:
        return self.root.ids.sm.get_screen(name)

    # -- building -------------------------------------------------------------------------
    def build(self) -> Root:
        Window.clearcolor = (0.93, 0.93, 0.90, 1)
        self._rescale()
        Window.bind(size=lambda *_: self._rescale())
        root = Root()
        sm = root.ids.sm
        for name, cls in SCREENS:
            sm.add_widget(cls(self.ctx, name=name))
        sm.current = "start"
        root.ids.nav.opacity = 0
        root.ids.nav.disabled = True
        root.ids.nav.show_bookings(self.session.has_bookings())
        sm.bind(current=lambda *_: self.mark_dirty())
        return root

    def _rescale(self) -> None:
        self.k = min(Window.width / 800, Window.height / 480)
        self.mark_dirty()

    def on_start(self) -> None:
        # systemd stops the kiosk with SIGTERM: finish the frame, close devices and the log.
        signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda _dt: self.stop(), 0))
        Window.bind(on_draw=self._first_draw)
        Clock.schedule_interval(lambda _dt: self.poll_now(), 3.0)
        self.poll_now()
        interval = sdnotify.watchdog_interval_s()
        if interval:
            # From the Kivy clock: a hung UI thread stops the heartbeat and systemd restarts us.
            Clock.schedule_interval(lambda _dt: sdnotify.notify("WATCHDOG=1"), interval)
        if self._recorder is not None:
            self._recorder.start()

    def _first_draw(self, *_: object) -> None:
        Window.unbind(on_draw=self._first_draw)

        def ready(_dt: float) -> None:
            # the self-test starts after the first frame, so it never delays the screen
            self.screen("start").run()
            self.ctx.announce("ready", seconds=time.perf_counter() - self.started)
            sdnotify.notify("READY=1")
            self.mark_dirty()

        Clock.schedule_once(ready, 0)

    def on_stop(self) -> None:
        self.hub.close()
        self.till.close()

    # -- navigation and pop-ups -----------------------------------------------------------
    def go(self, name: str) -> None:
        sm = self.root.ids.sm
        if name == sm.current:
            sm.current_screen.refresh()
        else:
            sm.current = name
        self.root.ids.nav.opacity = 0 if name == "start" else 1
        self.root.ids.nav.disabled = name == "start"
        self.mark_dirty()

    def ask_pin(
        self,
        title: str,
        then: Callable[[], None] | None,
        on_ok: Callable[[str, PinPad], None] | None = None,
    ) -> None:
        pad = PinPad(title=title)

        def check(pin: str, p: PinPad) -> None:
            stored = self.pin_hash()
            if not stored:
                p.ids.message.text = self.t(NO_PIN)
            elif verify_pin(pin, stored):
                p.dismiss()
                if then:
                    then()
            else:
                p.ids.message.text = self.t("Wrong PIN; try again.")
                p.pin = ""
            self.mark_dirty()

        pad.on_ok = on_ok or check
        self._open(pad)

    def ask_float(self, opened: Callable[[], None]) -> None:
        """Open a shift with the counted opening float (the Z report's cash starts there)."""
        pad = AmountPad(self.ctx.money, title=self.t("Count the drawer: opening float"))

        def ok(digits: str, p: PinPad) -> None:
            try:
                self.session.open_shift(fmt.parse_minor(digits, "") or 0)
            except TillError as exc:
                p.ids.message.text = str(exc)
                self.mark_dirty()
                return
            p.dismiss()
            opened()
            self.poll_now()

        pad.on_ok = ok
        self._open(pad)

    def ask_text(self, title: str, on_ok: Callable[[str, TextPad], None]) -> None:
        pad = TextPad(title=title)
        pad.on_ok = on_ok
        self._open(pad)

    def ask_event(self, then: Callable[[], None] | None) -> None:
        """Which event this till is at (the core asks when unsure); ``then`` once chosen."""

        def chosen() -> None:
            self.root.ids.status.show_event(self.ctx)
            if then:
                then()

        self._open(EventChooser(self.ctx, chosen))

    def _open(self, pad: PinPad | TextPad | EventChooser) -> None:
        pad.bind(on_dismiss=self._dismissed)
        pad.open()
        Clock.schedule_once(lambda _dt: self.mark_dirty(), 0.3)

    def _dismissed(self, *_: object) -> None:
        # must return None: a truthy return from on_dismiss keeps the pop-up open
        Clock.schedule_once(lambda _dt: self.mark_dirty(), 0)

    def set_language(self, lang: str) -> None:
        """Switch language now and keep it (``[ui] lang`` in tillbox.toml)."""
        config = self.data_dir.load_config()
        config.update("ui", lang=lang)
        self.data_dir.save_config(config)
        self.lang = lang
        self.root.ids.status.show(self.ctx, self._status_info)
        self.root.ids.sm.current_screen.refresh()
        self.mark_dirty()

    # -- status ---------------------------------------------------------------------------
    def poll_now(self) -> None:
        if self._polling:
            return
        self._polling = True

        def done(info: dict[str, Any]) -> None:
            self._polling = False
            self.ctx.device_states = info["states"]
            self.ctx.sync = info["sync"]
            self.ctx.exposure = info["exposure_minor"]
            self.ctx.stock = info["stock"]
            self.screen("sell").show_stock()
            self._status_info = info
            self.root.ids.status.show(self.ctx, info)
            self.root.ids.nav.show_bookings(self.session.has_bookings())
            self.ctx.announce("status", info=info)
            self.mark_dirty()

        self.root.ids.status.show(self.ctx, {})
        self.hub.poll(done)

    def mark_dirty(self) -> None:
        """Something on screen changed (the test probe snapshots then); a no-op otherwise."""
        if self._recorder is not None:
            self._recorder.dirty = True
