"""Personalise, step 3: the proof drawn to scale in the work area."""

from __future__ import annotations

from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class PersProofScreen(KScreen):
    def refresh(self) -> None:
        a = self.ctx
        tp = a.order.get("toolpath")
        area = a.hub.work_area()
        self.ids.proof.area = area
        self.ids.proof.toolpath = tp
        self.ids.title.text = f'{self.t("Proof")}: "{a.order.get("text", "")}"'
        if tp is not None:
            x0, y0, x1, y1 = tp.bbox
            self.ids.facts.text = (
                f"{self.t('Work area')} {area.width_mm:g} x {area.height_mm:g} mm · "
                f"{self.t('text')} {x1 - x0:.1f} x {y1 - y0:.1f} mm · "
                f"{self.t('letters')} {tp.letter_mm:.1f} mm · ~{int(tp.estimated_s) + 1} s"
            )
