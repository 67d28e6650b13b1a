"""The technician settings screen: language, devices, sync, card exposure, and a
system update from a USB stick.

The update offer: each time the screen is shown, the hub looks in the USB folder
(``[ui] usb_path``) for a bundle this till may install (``offer_from_stick``: trusted,
for this hardware, newer than the running system) and offers "Install update X.Y.Z";
a second tap confirms; the install runs through the core's service, which refuses it
during an open sale, and the screen shows its progress and its result line. The till
keeps running the old system until it restarts (at shift close, or ``tillbox update
reboot``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.factory import Factory
from kivy.properties import BooleanProperty, StringProperty

from ui import i18n
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class SettingsScreen(KScreen):
    offer_text = StringProperty("")  # "Install update 2.1.0"; "" when nothing is offered
    confirming = BooleanProperty(False)
    installing = BooleanProperty(False)
    offer: Any = None

    def refresh(self) -> None:
        a = self.ctx
        langs = self.ids.langs
        langs.clear_widgets()
        for code in i18n.available():
            b = Factory.TToggle(
                text=i18n.NAMES.get(code, code),
                group="lang",
                probe=f"lang-{code}",
                allow_no_selection=False,
                state="down" if code == a.shell.lang else "normal",
            )
            b.bind(on_release=lambda _b, c=code: a.shell.set_language(c))
            langs.add_widget(b)
        rows = []
        for kind, state in sorted(a.device_states.items()):
            mark = "OK" if state.ok else "!!"
            rows.append(f"[b]{kind}[/b] {mark}  {state.url}\n    {state.message}")
        sync = a.sync
        if sync is not None:
            rows.append(
                f"[b]sync[/b] {'online' if sync.online else 'offline'} · "
                f"acked seq {sync.acked_seq} of {sync.last_seq} · waiting {sync.waiting} · "
                f"{a.agent_note(sync) if not sync.agent_running else sync.state.detail}"
            )
        rows.append(f"[b]{self.t('Unsynced card payments')}[/b] {a.money(a.exposure)}")
        self.ids.devices.text = "\n".join(rows)
        if not self.installing:
            self.look_for_update()

    # -- a system update from the USB stick --------------------------------------------
    def _say(self, text: str) -> None:
        self.ids.update_message.text = text
        self.ctx.mark_dirty()

    def look_for_update(self) -> None:
        self.offer, self.offer_text, self.confirming = None, "", False
        self._say(self.t("Looking for an update on the USB stick..."))

        def found(offer: Any) -> None:
            if self.installing:
                return
            self.offer = offer
            self.offer_text = f"{self.t('Install update')} {offer.plan.to_version}"
            self._say(
                f"{Path(offer.bundle.path).name}: {offer.plan.to_version} "
                f"{self.t('for')} {offer.plan.compatible}; {self.t('this till runs')} "
                f"{offer.plan.from_version}"
            )

        def none(message: str) -> None:
            if not self.installing:
                self._say(f"{self.t('No update to install')}: {message}")

        self.ctx.hub.update_offer(Path(self.ctx.usb_path), found, none)

    def ask_install(self) -> None:
        if self.offer is None:
            return
        plan = self.offer.plan
        self.confirming = True
        self._say(
            f"{self.t('Install')} {plan.to_version} {self.t('into slot')} {plan.to_slot}? "
            f"{self.t('The till keeps running')} {plan.from_version} "
            f"{self.t('until it restarts.')}"
        )

    def cancel_install(self) -> None:
        self.confirming = False
        self.look_for_update()

    def install(self) -> None:
        if self.offer is None or self.installing:
            return
        version = self.offer.plan.to_version
        self.confirming, self.installing = False, True
        self._say(f"{self.t('Installing')} {version}...")

        def progress(percent: int, what: str) -> None:
            self._say(f"{self.t('Installing')} {version}: {percent}% {what}")

        def done(result: Any) -> None:
            plan = result.plan
            self.installing, self.offer, self.offer_text = False, None, ""
            self._say(
                f"{self.t('Installed')} {plan.to_version} {self.t('into slot')} "
                f"{plan.to_slot}. {self.t('The till runs')} {plan.from_version} "
                f"{self.t('until it restarts at shift close.')}"
            )

        def failed(message: str) -> None:
            self.installing = False
            self._say(f"{self.t('Update not installed')}: {message}")

        self.ctx.hub.install_update(Path(self.offer.bundle.path), progress, done, failed)

    def rerun_selftest(self) -> None:
        self.ctx.go("start")
        self.ctx.screen("start").run()
