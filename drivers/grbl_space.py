"""Where the bed lies in GRBL's machine space, and whether a job stays on it. No I/O.

GRBL 1.1 knows its machine space only after homing (``$22=1``): the homing cycle
then puts the whole space in negative coordinates, ``-$130..0`` on X (``limits.c``),
whichever end the switches are at (``$23`` only says which way homing runs). A
firmware built with ``HOMING_FORCE_SET_ORIGIN`` (``Z`` in the ``$I`` options) instead
makes home 0, so an axis homed towards negative (its ``$23`` bit set) runs ``0..$130``.
Without homing, machine zero is wherever the head was at power-up; tillbox takes it
to be the bed's front-left corner (the operator parks the head there before switching
on), so the space is ``0..$130``.

tillbox's work coordinates (``G54``) put X0 Y0 at the bed's low corner, the corner
``[engraver] origin_x_mm``/``origin_y_mm`` are measured from: the job's G-code is in
bed millimetres on every machine, and :meth:`MachineSpace.bed_offset` is the ``G54``
offset that makes it so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.common import DeviceFault

AXES = "XYZ"
_WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))")
_CONFIG_HINT = {
    0: "[engraver] origin_x_mm + width_mm",
    1: "[engraver] origin_y_mm + height_mm",
    2: "the job's Z moves",
}
_EPS = 1e-6


def _mm(v: float) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class MachineSpace:
    """The machine's travel, read from ``$$`` (and ``$I`` for the build options)."""

    travel: tuple[float, float, float]  # $130, $131, $132 (mm)
    homing: bool = False  # $22
    soft_limits: bool = False  # $20
    dir_invert: int = 0  # $23
    force_origin: bool = False  # build option Z: HOMING_FORCE_SET_ORIGIN

    @classmethod
    def from_settings(cls, settings: Mapping[int, float], build_options: str = "") -> MachineSpace:
        """From ``$$`` values; a controller that does not report its travel is refused."""
        missing = [f"${130 + i}" for i in range(2) if settings.get(130 + i, 0) <= 0]
        if missing:
            raise DeviceFault(
                f"engraver did not report its travel ({', '.join(missing)}); set the "
                "machine's max travel in mm ($130, $131) so tillbox can check each job"
            )
        return cls(
            travel=(settings[130], settings[131], max(0.0, settings.get(132, 0.0))),
            homing=settings.get(22) == 1,
            soft_limits=settings.get(20) == 1,
            dir_invert=int(settings.get(23, 0)),
            force_origin="Z" in build_options,
        )

    def machine_range(self, axis: int) -> tuple[float, float]:
        """The axis's travel in machine coordinates (low, high)."""
        travel = self.travel[axis]
        if not self.homing or (self.force_origin and self.dir_invert >> axis & 1):
            return 0.0, travel
        return -travel, 0.0

    def bed_offset(self) -> tuple[float, float]:
        """The ``G54`` X, Y offset that puts work X0 Y0 at the bed's low corner."""
        return self.machine_range(0)[0], self.machine_range(1)[0]

    def describe(self) -> str:
        """The travel as a person reads it: ``X 0-300 mm, Y 0-200 mm ($130=300, $131=200)``."""
        x, y = (f"{AXES[i]} 0-{_mm(self.travel[i])} mm" for i in range(2))
        return f"{x}, {y} ($130={_mm(self.travel[0])}, $131={_mm(self.travel[1])})"


def travel_problem(
    lines: Iterable[str], space: MachineSpace, work_offset: tuple[float, float, float]
) -> str | None:
    """Why the job would leave the machine's travel, in one line, or None.

    ``work_offset`` is the G54 offset the job will run with (machine = work + offset).
    Every programmed end point is checked; tillbox jobs are straight moves, so a box
    that holds the end points holds the whole path. The message names the furthest
    point the job reaches, so the operator sees by how much it is off.
    """
    absolute = True
    pos: list[float | None] = [None, None, None]  # work position, unknown until programmed
    reach: dict[int, tuple[float, float]] = {}  # machine min, max per axis
    for n, raw in enumerate(lines, 1):
        line = re.sub(r"\([^)]*\)|;.*$", "", raw).replace(" ", "").upper()
        words = _WORD.findall(line)
        gs = {float(v) for letter, v in words if letter == "G"}
        if gs & {10, 28, 30, 92, 92.1}:
            return (
                f"G-code line {n} ({raw.strip()!r}) sets or uses stored offsets; "
                "tillbox sets the work coordinates itself, remove that line"
            )
        if 90 in gs:
            absolute = True
        if 91 in gs:
            absolute = False
        for letter, value in words:
            if letter not in AXES:
                continue
            axis = AXES.index(letter)
            v = float(value)
            if 53 in gs:  # G53: this move is in machine coordinates
                target = v
            elif absolute:
                target = v + work_offset[axis]
            elif pos[axis] is None:
                return (
                    f"G-code line {n} ({raw.strip()!r}) moves relative (G91) from an "
                    "unknown position; start the job with absolute moves (G90)"
                )
            else:
                target = pos[axis] + v + work_offset[axis]
            low, high = reach.get(axis, (target, target))
            reach[axis] = (min(low, target), max(high, target))
            pos[axis] = target - work_offset[axis]
    for axis, (lowest, highest) in sorted(reach.items()):
        low, high = space.machine_range(axis)
        worst = highest if highest > high + _EPS else lowest if lowest < low - _EPS else None
        if worst is not None:
            return (
                f"the job leaves the engraver's travel: it reaches {AXES[axis]}"
                f"{_mm(worst - work_offset[axis])} but the machine has {space.describe()}; "
                f"keep {_CONFIG_HINT[axis]} within it"
            )
    return None
