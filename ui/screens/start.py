"""The start screen: the self-test results and the gate (selling blocked, override)."""

from __future__ import annotations

from kivy.properties import BooleanProperty

from appliance.errors import TillError
from ui.pads import PinPad
from ui.screens.base import KScreen, load_kv
from ui.session import Gate, SelftestReport

load_kv(__file__)


class StartScreen(KScreen):
    blocked = BooleanProperty(False)
    done = BooleanProperty(False)

    def run(self) -> None:
        self.done = False
        self.ids.checks.text = self.t("Checking the till...")
        self.ids.verdict.text = ""
        self.ctx.hub.selftest(self.show_report, self.show_error)

    def show_report(self, report: SelftestReport) -> None:
        a = self.ctx
        gate = a.session.apply_selftest(report)
        rows = []
        colours = {"pass": "1b7a2e", "warn": "a06000", "fail": "b01010"}
        for c in report.checks:
            mark = {"pass": self.t("OK"), "warn": self.t("Warning"), "fail": self.t("FAILED")}[
                c.result
            ]
            line = f"[b][color={colours[c.result]}]{mark}[/color][/b]  {c.name}: {c.value}"
            if c.fix and c.result != "pass":
                line += f"\n        {self.t('Fix')}: {c.fix}"
            rows.append(line)
        self.ids.checks.text = "\n".join(rows)
        self._verdict(gate)

    def _verdict(self, gate: Gate) -> None:
        self.blocked = gate.blocked
        self.done = True
        if gate.blocked:
            self.ids.verdict.text = (
                f"[color=b01010][b]{self.t('Selling is blocked')}:[/b] {gate.reason}[/color]"
            )
        elif gate.overridden:
            self.ids.verdict.text = self.t(
                "Technician override recorded in the log. Selling allowed."
            )
        else:
            self.ids.verdict.text = f"[color=1b7a2e][b]{self.t('Ready to trade.')}[/b][/color]"
        self.ctx.announce("gate", gate=gate)
        self.ctx.mark_dirty()

    def show_error(self, message: str) -> None:
        self.ids.checks.text = message
        self._verdict(self.ctx.session.selftest_unavailable(message))

    def override(self) -> None:
        a = self.ctx

        def ok(pin: str, pad: PinPad) -> None:
            try:
                gate = a.session.override(pin)
            except TillError as exc:
                pad.ids.message.text = str(exc)
                pad.pin = ""
                return
            pad.dismiss()
            self._verdict(gate)

        a.ask_pin(self.t("Technician PIN to override the self-test"), None, ok)
