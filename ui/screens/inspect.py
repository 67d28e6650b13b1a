"""The inspection screen: today's log, permits, self-tests; export the bundle."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from kivy.properties import StringProperty

from appliance import inspection
from appliance.till import Till
from ui import fmt
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class InspectScreen(KScreen):
    tab = StringProperty("log")

    def refresh(self) -> None:
        self.show(self.tab)

    def show(self, tab: str) -> None:
        self.tab = tab
        till = self.ctx.session.till
        if tab == "log":
            self.ids.body.text = self._log(till)
        elif tab == "permits":
            self.ids.body.text = self._permits(till)
        else:
            self.ids.body.text = self._selftests(till)
        self.ctx.mark_dirty()

    @staticmethod
    def _today_ms() -> int:
        now = datetime.now()
        return int(datetime(now.year, now.month, now.day).timestamp() * 1000)

    def _log(self, till: Till) -> str:
        rows = [
            f"{e.seq:>6}  {fmt.clock(e.wall_ms)}  {e.type}"
            for e in inspection.events_since(till.log, self._today_ms())
        ]
        head = f"{self.t('Events today')}: {len(rows)} ({self.t('newest first, read-only')})"
        return "\n".join([head, "", *rows])

    def _permits(self, till: Till) -> str:
        shop = till.config.section("shop")
        lines = [
            f"{self.t('Shop')}: {shop.get('name', '')}",
            f"{self.t('Location')}: {shop.get('location', '')}",
            f"{self.t('Permit (config)')}: {shop.get('permit', '') or '-'}",
            "",
        ]
        manifest = inspection.latest_enrollment_manifest(till.log)
        if manifest is None:
            lines.append(self.t("No enrollment recorded (no permit scans)."))
        else:
            for permit in manifest.get("permits", []):
                lines.append(
                    f"{permit.get('kind', 'permit')} {permit.get('number', '')} · "
                    f"{self.t('valid until')} {permit.get('expires', '?')}"
                )
        return "\n".join(lines)

    def _selftests(self, till: Till) -> str:
        lines = []
        for e in inspection.selftest_history(till.log):
            p = e.payload
            when = datetime.fromtimestamp(e.wall_ms / 1000).strftime("%Y-%m-%d %H:%M")
            if "verdict" in p:
                failed = [c["name"] for c in p.get("checks", []) if c.get("result") == "fail"]
                lines.append(f"{e.seq:>6}  {when}  {p['verdict'].upper():<5} {', '.join(failed)}")
            else:
                lines.append(f"{e.seq:>6}  {when}  OVERRIDE {', '.join(p.get('failed', []))}")
        return "\n".join(lines) or self.t("No self-test recorded yet.")

    def export(self) -> None:
        a = self.ctx
        target = Path(a.usb_path)
        if not target.is_dir():
            self.ids.message.text = (
                f"{self.t('No USB stick found at')} {target}; {self.t('plug one in and try again')}"
            )
            a.mark_dirty()
            return
        name = f"tillbox-{a.session.till.device_id}-{datetime.now():%Y%m%d-%H%M%S}.zip"
        self.ids.message.text = self.t("Exporting the inspection bundle...")

        def done(result: Any) -> None:
            self.ids.message.text = (
                f"{self.t('Bundle written')}: {result.path} "
                f"({result.events} {self.t('events')}, "
                f"{result.receipts} {self.t('receipts')})"
            )
            a.announce("exported", path=result.path)
            a.mark_dirty()

        def failed(message: str) -> None:
            self.ids.message.text = f"{self.t('Export failed')}: {message}"
            a.mark_dirty()

        a.hub.export_bundle(target / name, done, failed)
