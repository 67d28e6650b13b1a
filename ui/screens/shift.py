"""The shift screen: open with the counted float, close with the Z report."""

from __future__ import annotations

from kivy.properties import NumericProperty

from appliance.errors import TillError
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class ShiftScreen(KScreen):
    open_no = NumericProperty(0)

    def refresh(self) -> None:
        shift = self.ctx.session.shift()
        self.open_no = shift or 0
        self.ids.state.text = (
            f"{self.t('Shift')} {shift} {self.t('is open')}"
            if shift
            else self.t("No shift is open")
        )
        self.ctx.mark_dirty()

    def open_shift(self) -> None:
        def opened() -> None:
            self.ids.message.text = ""
            self.ids.z.text = ""
            self.refresh()

        self.ctx.ask_float(opened)

    def close_shift(self) -> None:
        a = self.ctx
        try:
            z = a.session.close_shift()
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        lines = a.session.z_lines(z, a.money)
        self.ids.z.text = "\n".join(lines)
        self.ids.message.text = self.t("Printing the Z report...")

        def printed(problem: str) -> None:
            self.ids.message.text = (
                f"{self.t('Z report not printed')}: {problem}"
                if problem
                else self.t("Z report printed.")
            )
            a.mark_dirty()

        a.hub.print_z(z["shift_no"], printed)
        a.announce("z_report", shift_no=z["shift_no"])
        self.refresh()
        a.poll_now()
