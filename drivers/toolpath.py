"""Text to toolpath: a customer's words, in the single-stroke font, fitted into the work area.

The text is scaled to fill the configured work area (minus a margin) up to a maximum
letter height, centred, and turned into GRBL laser G-code with the material's power
and feed. Text that would have to be smaller than the minimum legible letter height
is refused with the number of characters that do fit; nothing is ever clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from drivers import strokefont
from drivers.common import DeviceFault


class ToolpathError(DeviceFault):
    """The text cannot be engraved as asked; the message says how to change it."""


@dataclass(frozen=True)
class Material:
    name: str
    power: int  # S value, of spindle max ($30, 1000 by default)
    feed_mm_min: int
    passes: int = 1


MATERIALS: dict[str, Material] = {
    "wood": Material("wood", 700, 1200),
    "leather": Material("leather", 350, 1800),
    "anodised-aluminium": Material("anodised-aluminium", 1000, 500),
}
_ALIASES = {
    "anodised_aluminium": "anodised-aluminium",
    "aluminium": "anodised-aluminium",
    "anodized-aluminum": "anodised-aluminium",
    "aluminum": "anodised-aluminium",
}


def material(name: str, overrides: dict[str, Any] | None = None) -> Material:
    """A material profile by name; ``overrides`` (config ``[materials.NAME]``) win."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    base = MATERIALS.get(key)
    extra = (overrides or {}).get(key)
    if base is None and not extra:
        raise ToolpathError(f"material {name!r} is not known; use one of {', '.join(MATERIALS)}")
    base = base or Material(key, 500, 1000)
    if extra:
        base = Material(
            key,
            int(extra.get("power", base.power)),
            int(extra.get("feed_mm_min", base.feed_mm_min)),
            int(extra.get("passes", base.passes)),
        )
    return base


@dataclass(frozen=True)
class WorkArea:
    """Where on the bed the piece sits, in mm from the bed's low (front-left) corner.

    These are the engraver's work coordinates: :mod:`drivers.grbl_space` puts G54's
    X0 Y0 at that corner on every machine, homed (negative machine space) or not.
    """

    width_mm: float = 50.0
    height_mm: float = 20.0
    origin_x_mm: float = 0.0
    origin_y_mm: float = 0.0
    margin_mm: float = 2.0
    max_letter_mm: float = 10.0  # cap height
    min_letter_mm: float = 2.5
    rapid_mm_min: float = 6000.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> WorkArea:
        known = {f: section[f] for f in cls.__dataclass_fields__ if f in section}
        try:
            return cls(**{k: float(v) for k, v in known.items()})
        except (TypeError, ValueError):
            raise ToolpathError(
                "the [engraver] work area in tillbox.toml has a value that is not a number; fix it"
            ) from None


@dataclass(frozen=True)
class Toolpath:
    text: str
    material: Material
    polylines: list[list[tuple[float, float]]]
    bbox: tuple[float, float, float, float]  # min x, min y, max x, max y (mm)
    letter_mm: float
    gcode: list[str] = field(default_factory=list)
    cut_mm: float = 0.0
    travel_mm: float = 0.0
    estimated_s: float = 0.0
    origin_mm: tuple[float, float] = (0.0, 0.0)  # the work area's corner: where jobs end

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "material": self.material.name,
            "bbox_mm": [round(v, 3) for v in self.bbox],
            "letter_mm": round(self.letter_mm, 3),
            "lines": len(self.gcode),
            "cut_mm": round(self.cut_mm, 1),
            "estimated_s": round(self.estimated_s, 1),
        }


def _num(v: float) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def text_to_toolpath(text: str, material: Material, work_area: WorkArea) -> Toolpath:
    """Lay ``text`` out in the work area and build its G-code; refuse what does not fit."""
    lines = [ln.strip() for ln in strokefont.normalise(text).strip().split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ToolpathError("there is no text to engrave; type the customer's text")
    bad = strokefont.unsupported("\n".join(lines))
    if bad:
        raise ToolpathError(str(strokefont.UnsupportedCharacter(bad)))
    laid = [strokefont.layout_line(ln) for ln in lines]
    line_pitch = strokefont.LINE_TOP - strokefont.LINE_BOTTOM + 1.0
    text_w = max(w for w, _ in laid)
    text_h = line_pitch * (len(lines) - 1) + strokefont.LINE_TOP - strokefont.LINE_BOTTOM
    area = work_area
    avail_w = area.width_mm - 2 * area.margin_mm
    avail_h = area.height_mm - 2 * area.margin_mm
    if avail_w <= 0 or avail_h <= 0:
        raise ToolpathError(
            "the work area is smaller than its margins; fix [engraver] in tillbox.toml"
        )
    scale = min(
        avail_w / text_w if text_w else math.inf,
        avail_h / text_h,
        area.max_letter_mm / strokefont.CAP,
    )
    letter = scale * strokefont.CAP
    if letter < area.min_letter_mm:
        k = area.min_letter_mm / strokefont.CAP
        per_line = int(avail_w / (k * 5.0))  # ~5 font units per average letter
        fit_lines = max(
            1, int((avail_h / k - (strokefont.LINE_TOP - strokefont.LINE_BOTTOM)) // line_pitch) + 1
        )
        raise ToolpathError(
            f"the text does not fit the {area.width_mm:g} x {area.height_mm:g} mm work area at "
            f"the smallest legible letter height ({area.min_letter_mm:g} mm): about "
            f"{per_line} characters per line and {fit_lines} line(s) fit; shorten it"
        )
    # centre the block of text in the area; y grows upwards on the bed
    block_w, block_h = text_w * scale, text_h * scale
    x0 = area.origin_x_mm + area.margin_mm + (avail_w - block_w) / 2
    top = area.origin_y_mm + area.margin_mm + (avail_h + block_h) / 2
    polylines: list[list[tuple[float, float]]] = []
    for index, (width, strokes) in enumerate(laid):
        baseline = top - (strokefont.LINE_TOP + index * line_pitch) * scale
        dx = x0 + (block_w - width * scale) / 2
        for stroke in strokes:
            polylines.append(
                [(round(dx + x * scale, 3), round(baseline + y * scale, 3)) for x, y in stroke]
            )
    xs = [p[0] for pl in polylines for p in pl]
    ys = [p[1] for pl in polylines for p in pl]
    if not xs:
        raise ToolpathError("the text has nothing to engrave (only spaces)")
    bbox = (min(xs), min(ys), max(xs), max(ys))
    limit = (
        area.origin_x_mm,
        area.origin_y_mm,
        area.origin_x_mm + area.width_mm,
        area.origin_y_mm + area.height_mm,
    )
    if (
        bbox[0] < limit[0] - 1e-6
        or bbox[1] < limit[1] - 1e-6
        or bbox[2] > limit[2] + 1e-6
        or bbox[3] > limit[3] + 1e-6
    ):  # a guard on the arithmetic above, never clipping
        raise ToolpathError("the laid-out text leaves the work area; report this as a bug")
    gcode, cut, travel = _gcode(polylines, material, area)
    estimated = cut / material.feed_mm_min * 60 + travel / area.rapid_mm_min * 60
    return Toolpath(
        text,
        material,
        polylines,
        bbox,
        letter,
        gcode,
        cut,
        travel,
        estimated,
        (area.origin_x_mm, area.origin_y_mm),
    )


def _gcode(
    polylines: list[list[tuple[float, float]]], mat: Material, area: WorkArea
) -> tuple[list[str], float, float]:
    """Laser-mode G-code: M4 (dynamic power), G0 between strokes is laser-off in $32=1."""
    out = ["G21", "G90", "G94", f"F{mat.feed_mm_min}", "M4 S0"]
    pos = (area.origin_x_mm, area.origin_y_mm)
    cut = travel = 0.0
    for _ in range(max(1, mat.passes)):
        for line in polylines:
            start = line[0]
            travel += math.dist(pos, start)
            out.append(f"G0 X{_num(start[0])} Y{_num(start[1])}")
            pos = start
            if len(line) == 1:
                continue
            for i, (x, y) in enumerate(line[1:]):
                cut += math.dist(pos, (x, y))
                pos = (x, y)
                out.append(f"G1 X{_num(x)} Y{_num(y)}" + (f" S{mat.power}" if i == 0 else ""))
    out += ["M5 S0", f"G0 X{_num(area.origin_x_mm)} Y{_num(area.origin_y_mm)}"]
    travel += math.dist(pos, (area.origin_x_mm, area.origin_y_mm))
    return out, cut, travel


def frame_gcode(toolpath: Toolpath, feed_mm_min: int = 3000) -> list[str]:
    """Dry run: trace the bounding box with the laser off (M5, S0) to check placement.

    It ends where the real job ends, at the work area's corner (not at X0 Y0, the bed's).
    """
    x0, y0, x1, y1 = toolpath.bbox
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    out = ["G21", "G90", "G94", "M5 S0", f"G0 X{_num(x0)} Y{_num(y0)}"]
    out += [f"G1 X{_num(x)} Y{_num(y)} F{feed_mm_min} S0" for x, y in corners[1:]]
    ox, oy = toolpath.origin_mm
    out.append(f"G0 X{_num(ox)} Y{_num(oy)}")
    return out
