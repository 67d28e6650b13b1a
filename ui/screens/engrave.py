"""The engrave screen: start, progress, hold/resume and cancel of a sale line's job.

The lines come from the core's queue (:func:`appliance.services.engraving.engraving_queue`)
of a sale, or of a paid booking's hand-over (no sale: its ``booking.redeemed``).
"""

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty

from appliance.errors import TillError
from appliance.services.engraving import EngravingJob, engraving_queue
from appliance.till import SaleResult
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class EngraveScreen(KScreen):
    running = BooleanProperty(False)
    held = BooleanProperty(False)
    pending = BooleanProperty(False)

    def on_kv_post(self, *_: object) -> None:
        self.order: dict[str, Any] = {}  # the sale's or the hand-over's payload
        self.queue: list[dict[str, Any]] = []
        self.job: Any = None  # drivers.grbl_job.EngraveJob while one runs
        self.current: dict[str, Any] | None = None

    def load_sale(self, sale: SaleResult) -> None:
        self.load_order(sale.payload)

    def load_order(self, payload: dict[str, Any]) -> None:
        """Engrave the personalised lines of ``payload`` (a sale, or a paid booking's
        ``booking.redeemed``: its lines carry the engraving text the same way)."""
        self.order = payload
        self.queue = engraving_queue(payload)
        self.pending = bool(self.queue)
        self.job = None
        self.ids.bar.value = 0

    def refresh(self) -> None:
        a = self.ctx
        self.ids.proof.area = a.hub.work_area()
        if self.running:
            return
        if self.queue:
            line = self.queue[0]
            text = line["personalisation"].get("text", "")
            self.ids.title.text = f'{self.t("Engrave")} {line["name"]}: "{text}"'
            try:
                self.current = {
                    "line": line,
                    "toolpath": a.hub.toolpath(
                        text, line["personalisation"].get("material", "wood")
                    ),
                }
                self.ids.proof.toolpath = self.current["toolpath"]
                self.ids.proof.done_fraction = 0.0
                self.ids.status.text = self.t("Place the blank in the engraver, then start.")
            except TillError as exc:
                self.ids.status.text = str(exc)
                self.pending = False
        elif not self.ids.status.text:
            self.ids.title.text = self.t("Nothing to engrave")

    def start(self) -> None:
        a = self.ctx
        if not self.current or self.running:
            return
        line, tp = self.current["line"], self.current["toolpath"]
        self.running = True
        self.held = False
        self.ids.status.text = self.t("Starting the engraver...")
        # The core records the job's lifecycle; "started" only once the engraver took it.
        record = EngravingJob(
            a.till,
            self.order,
            line["line"],
            text=line["personalisation"].get("text", ""),
            gcode_lines=len(tp.gcode),
            estimated_ms=int(tp.estimated_s * 1000),
        )
        a.announce("engraving", state="starting")
        a.hub.engrave(
            tp.gcode,
            tp.estimated_s,
            self.progress,
            lambda result: self.finished(record, result),
            lambda message: self.failed(record, message),
            lambda job: self.started(record, job),
        )

    def started(self, record: EngravingJob, job: Any) -> None:  # drivers.grbl_job.EngraveJob
        record.accepted()
        self.job = job
        self.ids.status.text = self.t("Engraving...")
        self.ctx.announce("engraving", state="running")
        self.ctx.mark_dirty()

    def progress(self, p: Any) -> None:  # drivers.grbl_job.JobProgress
        self.ids.bar.value = int(p.fraction * 1000)
        self.ids.proof.done_fraction = p.fraction
        left = f" · ~{int(p.remaining_s) + 1} s" if p.remaining_s is not None else ""
        state = self.t("Held") if p.state == "held" else self.t("Engraving")
        self.ids.status.text = f"{state} {int(p.fraction * 100)} %{left}"
        self.ctx.announce("engraving", state=p.state, fraction=round(p.fraction, 3))
        self.ctx.mark_dirty()

    def finished(self, record: EngravingJob, result: Any) -> None:  # drivers.grbl_job.JobResult
        a = self.ctx
        record.finished(result.outcome, result.to_json())
        self.running = False
        self.held = False
        self.job = None
        if result.ok:
            self.ids.bar.value = 1000
            self.ids.proof.done_fraction = 1.0
            self.ids.status.text = self.t("Engraving complete.")
            self.queue.pop(0)
        else:
            self.ids.status.text = f"{self.t('Engraving stopped')}: {result.message}"
        self.pending = bool(self.queue)
        a.announce("engraving", state=result.outcome)
        a.mark_dirty()

    def failed(self, record: EngravingJob, message: str) -> None:
        """The engraver refused the job or could not start it: recorded as failed only."""
        a = self.ctx
        record.refused(message)
        self.running = False
        self.ids.status.text = message
        a.announce("engraving", state="failed", message=message)
        a.mark_dirty()

    def toggle_hold(self) -> None:
        if self.job is None:
            return
        if self.held:
            self.job.resume()
        else:
            self.job.hold()
        self.held = not self.held

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.ids.status.text = self.t("Cancelling...")
