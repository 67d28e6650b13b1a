"""GRBL 1.1's interface as data: real-time bytes, alarm and error texts, and the parsers
of its reports (``<...>`` status, ``$I`` and ``$$`` at connect, ``$#``/``$G`` offsets).

No I/O: :mod:`drivers.grbl` reads the lines off the serial port and hands them here,
so every parser is tested with the report text alone (as GRBL's interface.md and
commands.md give it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from drivers.common import DeviceFault

RX_BUFFER = 128
RESET = b"\x18"
STATUS_QUERY = b"?"
FEED_HOLD = b"!"
CYCLE_START = b"~"
_STATUS = re.compile(r"^<([A-Za-z]+)(?::(\d))?\|(.*)>$")

ALARMS = {
    1: "hard limit triggered; check the carriage and the limit switches",
    2: "the job goes beyond the machine's travel (soft limit)",
    3: "reset while moving; the position may be lost",
    4: "probe fail",
    5: "probe fail",
    6: "homing fail: reset during homing",
    7: "homing fail: door opened during homing",
    8: "homing fail: could not clear the limit switch",
    9: "homing fail: limit switch not found",
    10: "homing fail: second switch not found",
}
ERRORS = {
    1: "a G-code word has no letter",
    2: "a number is missing or malformed",
    3: "the $ command is not known",
    5: "homing is not enabled",
    8: "the controller is busy",
    9: "G-code is locked out while in alarm",
    10: "soft limits cannot be enabled without homing",
    11: "the line is too long",
    20: "unsupported G-code command",
    22: "no feed rate set",
}

CRITICAL_ALARMS = (1, 2)  # hard and soft limit: GRBL waits for a soft reset
RESET_TO_CONTINUE = "[MSG:Reset to continue]"


def alarm_fix(homing: bool) -> str:
    """What the operator does about an Alarm: home when the machine can, else unlock."""
    if homing:
        return "clear the bed, then home it ($H: tillbox hw engrave --home)"
    return "check the machine, then unlock it (tillbox hw engrave --unlock)"


class EngraverAlarm(DeviceFault):
    """GRBL is in alarm; a person must home (``$H``) or unlock (``$X``) after checking.

    ``code`` is None when the alarm was raised before this connection: GRBL sends the
    code once, so only the state is known.
    """

    def __init__(self, code: int | None, homing: bool = False, note: str = "") -> None:
        self.code = code
        self.homing = homing
        note = f"; {note}" if note else ""
        if code is None:
            what = (
                "engraver is in Alarm, raised before this connection "
                "(GRBL tells an alarm's code only once)"
            )
        else:
            what = f"engraver alarm {code}: {ALARMS.get(code, 'see the GRBL manual')}"
        super().__init__(f"{what}{note}; {alarm_fix(homing)}")


@dataclass(frozen=True)
class GrblStatus:
    """One ``<...>`` report. GRBL sends ``MPos`` or ``WPos`` (``$10``) and a ``WCO`` field
    only now and then; ``wco`` is the offset known when the report arrived, so both
    positions are filled when either can be worked out (``WPos = MPos - WCO``)."""

    state: str  # Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep
    substate: int | None
    mpos: tuple[float, ...] | None  # machine position
    feed: float = 0.0
    power: float = 0.0
    fields: dict[str, str] = field(default_factory=dict)
    wpos: tuple[float, ...] | None = None  # work position: what jobs are written in
    wco: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, line: str, wco: tuple[float, ...] | None = None) -> GrblStatus | None:
        match = _STATUS.match(line.strip())
        if not match:
            return None
        state, sub, rest = match.groups()
        fields = dict(part.split(":", 1) for part in rest.split("|") if ":" in part)
        try:

            def axes(name: str) -> tuple[float, ...] | None:
                return tuple(float(v) for v in fields[name].split(",")) if name in fields else None

            mpos, wpos = axes("MPos"), axes("WPos")
            wco = axes("WCO") or wco
            fs = [float(v) for v in fields.get("FS", fields.get("F", "0")).split(",")]
        except ValueError:
            return None
        if mpos is None and wpos is None:
            return None
        if wco is not None and len(wco) == len(mpos or wpos or ()):
            if mpos is None:
                mpos = tuple(w + o for w, o in zip(wpos, wco, strict=True))
            if wpos is None:
                wpos = tuple(m - o for m, o in zip(mpos, wco, strict=True))
        return cls(
            state,
            int(sub) if sub else None,
            mpos,
            fs[0],
            fs[1] if len(fs) > 1 else 0,
            fields,
            wpos,
            wco,
        )

    @property
    def position(self) -> tuple[float, ...] | None:
        """The work position (what the job's coordinates mean), else the machine's."""
        return self.wpos if self.wpos is not None else self.mpos


@dataclass(frozen=True)
class Handshake:
    banner: str
    version: str
    build: list[str]
    settings: dict[int, float]
    laser_mode: bool
    status: GrblStatus | None
    reset_note: str = ""  # why tillbox had to reset the controller to get an answer

    @property
    def build_options(self) -> str:
        """The letters of ``[OPT:...]`` from ``$I`` (``Z`` = HOMING_FORCE_SET_ORIGIN)."""
        for line in self.build:
            if line.startswith("[OPT:"):
                return line[5:].split(",")[0]
        return ""


@dataclass(frozen=True)
class Offsets:
    """``$#`` and ``$G``: the stored work offsets and the active system (54..59)."""

    systems: dict[int, tuple[float, ...]]
    g92: tuple[float, ...]
    active: int = 54

    @classmethod
    def parse(cls, params: Sequence[str], modal: Sequence[str]) -> Offsets:
        systems: dict[int, tuple[float, ...]] = {}
        g92: tuple[float, ...] = (0.0, 0.0, 0.0)
        for line in params:
            match = re.fullmatch(r"\[G(5[4-9]|92):([-\d.,]+)\]", line)
            if match:
                values = tuple(float(v) for v in match.group(2).split(","))
                if match.group(1) == "92":
                    g92 = values
                else:
                    systems[int(match.group(1))] = values
        active = 54
        for line in modal:
            found = re.search(r"\bG(5[4-9])\b", line) if line.startswith("[GC:") else None
            if found:
                active = int(found.group(1))
        return cls(systems, g92, active)

    @property
    def wco(self) -> tuple[float, ...]:
        base = self.systems.get(self.active, (0.0, 0.0, 0.0))
        return tuple(a + b for a, b in zip(base, self.g92, strict=True))


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return -1
