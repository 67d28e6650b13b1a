"""Engraving runs started from ``tillbox hw engrave`` (no sale line): their outcome.

A sale line's engraving job is :mod:`appliance.services.engraving`'s; this records a
field technician's run from the command line as ``engraving.completed`` or
``engraving.failed`` with the driver's result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from appliance import events as ev

if TYPE_CHECKING:
    from collections.abc import Sequence

    from appliance.till import Till


class _Material(Protocol):
    name: str


class Toolpath(Protocol):
    """What the engraving's toolpath reports (``drivers.toolpath.Toolpath``)."""

    text: str
    material: _Material
    gcode: Sequence[str]
    letter_mm: float
    bbox: tuple[float, float, float, float]


class JobResult(Protocol):
    """What the engraver reports at the end of a job (``drivers.grbl_job.JobResult``)."""

    @property
    def ok(self) -> bool: ...

    outcome: str
    message: str
    lines_acked: int
    failed_line_no: int | None
    error_code: int | None
    elapsed_s: float


def engraving_payload(path: Toolpath, result: JobResult) -> dict[str, Any]:
    """The ``engraving.*`` event: whole numbers only (the log has no floats)."""
    return {
        "text": path.text,
        "material": path.material.name,
        "lines": len(path.gcode),
        "letter_um": round(path.letter_mm * 1000),
        "bbox_um": [round(v * 1000) for v in path.bbox],
        "outcome": result.outcome,
        "message": result.message,
        "lines_acked": result.lines_acked,
        "failed_line_no": result.failed_line_no,
        "error_code": result.error_code,
        "elapsed_ms": round(result.elapsed_s * 1000),
    }


def record_engraving_run(till: Till, path: Toolpath, result: JobResult) -> int:
    """Record the run's outcome; the event's seq."""
    kind = ev.ENGRAVING_COMPLETED if result.ok else ev.ENGRAVING_FAILED
    return till.record(kind, engraving_payload(path, result)).seq
