"""The technician settings screen: language, devices, sync, card exposure, and a
system update from a USB stick or the region.

The update offer: each time the screen is shown, the hub looks in the USB folder
(``[ui] usb_path``) for a bundle this till may install (``offer_from_stick``: trusted,
for this hardware, newer than the running system) and offers "Install update X.Y.Z".
It also asks for the region's online offer (``region_offer``): the screen shows its
line, and once its bundle is downloaded (and checks out the same way) offers "Install
update X.Y.Z now" instead of waiting for the next time between shifts. A second tap
confirms; the install runs through the core's service, which refuses it
during an open sale, and the screen shows its progress and its result line. The till
keeps running the old system until it restarts: at shift close, or when the technician
taps "Restart into X.Y.Z now" (offered while an installed update waits, refused during
an open sale, as ``tillbox update reboot`` is).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kivy.factory import Factory
from kivy.properties import BooleanProperty, StringProperty

from appliance.formats.release import parse_version
from ui import i18n
from ui.screens.base import KScreen, load_kv

load_kv(__file__)
log = logging.getLogger("tillbox.ui.settings")


class SettingsScreen(KScreen):
    offer_text = StringProperty("")  # "Install update 2.1.0"; "" when nothing is offered
    confirm_text = StringProperty("")  # "Yes, install" or "Yes, restart"
    confirming = BooleanProperty(False)
    installing = BooleanProperty(False)
    offer: Any = None  # the install offered (appliance.services.updates.Offer)
    _stick_offer: Any = None
    _region: Any = None  # appliance.services.updates.RegionOffer
    _restart: str | None = None  # the version an installed update waits to start in
    _stick_line = ""
    _looking = 0

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

    # -- a system update from the USB stick or the region ----------------------------
    def _say(self, text: str) -> None:
        self.ids.update_message.text = text
        self.ctx.mark_dirty()

    def look_for_update(self) -> None:
        self.offer, self.offer_text, self.confirming = None, "", False
        self._looking += 1
        look = self._looking  # a later look (the screen shown again) outdates this one
        self._stick_offer = self._region = self._restart = None
        self._stick_line = self.t("Looking for an update on the USB stick...")
        self._show()

        def current() -> bool:
            # not once a tap asked to install the offer shown (the confirm names its
            # version) or started it; cancelling looks again
            return look == self._looking and not self.installing and not self.confirming

        def stick(offer: Any) -> None:
            if current():
                self._stick_offer = offer
                self._stick_line = (
                    f"{Path(offer.bundle.path).name}: {offer.plan.to_version} "
                    f"{self.t('for')} {offer.plan.compatible}; {self.t('this till runs')} "
                    f"{offer.plan.from_version}"
                )
                self._show()

        def no_stick(message: str) -> None:
            if current():
                self._stick_line = f"{self.t('No update to install')}: {message}"
                self._show()

        def region(found: Any) -> None:
            if current():
                self._region = found
                self._show()

        def no_region(message: str) -> None:
            log.warning("the region's offer could not be read: %s", message)

        def restart(version: str | None) -> None:
            if current():
                self._restart = version
                self._show()

        def no_restart(message: str) -> None:
            log.warning("the updater's state could not be read: %s", message)

        self.ctx.hub.update_offer(Path(self.ctx.usb_path), stick, no_stick)
        self.ctx.hub.region_offer(region, no_region)
        self.ctx.hub.pending_restart(restart, no_restart)

    def _offer_button(self) -> None:
        """The one thing offered. An installed update waiting to start: its restart
        (installing more first would only be refused). Else the newer install of the
        region's and the stick's; on a tie the stick's: the technician who plugged it in
        meant that file, and its name is on the screen."""
        region = self._region
        candidates = [self._stick_offer, region.offer if region else None]
        offers = [o for o in candidates if o is not None]
        self.offer = max(offers, key=lambda o: parse_version(o.plan.to_version), default=None)
        if self._restart:
            self.offer = None
            self.offer_text = self.t("Restart into {version} now").format(version=self._restart)
        elif self.offer is None:
            self.offer_text = ""
        elif region is not None and self.offer is region.offer:
            version = self.offer.plan.to_version
            self.offer_text = self.t("Install update {version} now").format(version=version)
        else:
            self.offer_text = f"{self.t('Install update')} {self.offer.plan.to_version}"

    def _show(self) -> None:
        """The region's line (when it offers a release) above the stick's, and the
        button (:meth:`_offer_button`)."""
        self._offer_button()
        region = self._region
        lines = []
        if region is not None and region.line:
            lines.append(region.line)
            if region.problem:
                lines.append(f"{self.t('No update to install')}: {region.problem}")
        lines.append(self._stick_line)
        self._say("\n".join(lines))

    def ask(self) -> None:
        """The offer's button: ask to confirm the restart, or the install."""
        if self._restart:
            self.confirm_text, self.confirming = self.t("Yes, restart"), True
            self._say(
                self.t("Restart into {version} now?").format(version=self._restart)
                + " "
                + self.t("The till is away for a minute or two while it restarts.")
            )
            return
        if self.offer is None:
            return
        plan = self.offer.plan
        self.confirm_text, self.confirming = self.t("Yes, install"), True
        self._say(
            f"{self.t('Install')} {plan.to_version} {self.t('into slot')} {plan.to_slot}? "
            f"{self.t('The till keeps running')} {plan.from_version} "
            f"{self.t('until it restarts.')}"
        )

    def cancel(self) -> None:
        self.confirming = False
        self.look_for_update()

    def confirm(self) -> None:
        if self._restart:
            self.restart()
        else:
            self.install()

    def restart(self) -> None:
        version = self._restart
        if not version or self.installing:
            return
        self.confirming, self.installing = False, True  # no second tap while it restarts
        self._looking += 1
        self._say(self.t("Restarting into {version}...").format(version=version))

        def done(_result: Any) -> None:
            # the Pi's kiosk ends with the restart (its line stays until then); with a
            # simulated card the call returns at once, the card now boots the new slot
            self.installing = False

        def failed(message: str) -> None:
            self.installing = False
            self._say(f"{self.t('Not restarted')}: {message}")

        self.ctx.hub.restart_update(done, failed)

    def install(self) -> None:
        if self.offer is None or self.installing:
            return
        version = self.offer.plan.to_version
        self.confirming, self.installing = False, True
        self._looking += 1  # nothing a look still finds offers this install again
        self._say(f"{self.t('Installing')} {version}...")

        def progress(percent: int, what: str) -> None:
            self._say(f"{self.t('Installing')} {version}: {percent}% {what}")

        def done(result: Any) -> None:
            plan = result.plan
            self.installing, self._restart = False, plan.to_version
            self._stick_offer = self._region = None
            self._offer_button()  # now: its restart
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
