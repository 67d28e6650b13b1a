"""The technician settings screen: language, devices, sync, card exposure."""

from __future__ import annotations

from kivy.factory import Factory

from ui import i18n
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class SettingsScreen(KScreen):
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

    def rerun_selftest(self) -> None:
        self.ctx.go("start")
        self.ctx.screen("start").run()
