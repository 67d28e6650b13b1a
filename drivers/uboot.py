"""U-Boot as RAUC drives it: the environment's bytes, and how the boot script picks a slot.

**The environment** is U-Boot's own format (a single copy, ``CONFIG_ENV_IS_IN_FAT`` or
``_MMC``): a CRC-32 of the data (IEEE 802.3, little-endian), then ``name=value`` entries
each ending in NUL, one more NUL, and 0xFF up to the environment's size. libubootenv's
``fw_printenv``/``fw_setenv`` (what RAUC runs on the till) and U-Boot's ``mkenvimage``
read and write the same bytes; the tests check both.

**The boot script** is RAUC's documented one (``contrib/uboot.sh`` in RAUC's source,
"Set up U-Boot Boot Script for RAUC" in its integration guide). RAUC keeps
``BOOT_ORDER`` (boot names, first choice first) and ``BOOT_<name>_LEFT`` (attempts
left). At each boot the script takes the first slot in ``BOOT_ORDER`` with attempts
left, takes one attempt off it, saves the environment and boots it. With no slot left it
resets every counter to 3 and resets the board. A system that comes up healthy runs
``rauc status mark-good``, which puts its counter back; one that never does runs out of
attempts, and the next slot in ``BOOT_ORDER`` boots instead. :func:`choose_slot` is that
script, step for step: the simulator boots by it, and the test rig boots real RAUC's
slots by it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from appliance.boundedio import KiB, read_bounded
from appliance.errors import TillError
from appliance.fsutil import atomic_write

ENV_SIZE = 16 * KiB  # CONFIG_ENV_SIZE 0x4000, what fw_env.config names too
ATTEMPTS = 3  # the script's reset value, RAUC's boot-attempts(-primary) default
BOOTNAMES = ("A", "B")


class EnvError(TillError):
    """The environment's bytes are not a U-Boot environment (bad CRC, no terminator)."""


def encode(env: dict[str, str], size: int = ENV_SIZE) -> bytes:
    """The environment as U-Boot stores it (names sorted, as fw_setenv writes them)."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name + value:
            raise EnvError(f"U-Boot variable {name!r} cannot hold {value!r}")
    body = b"".join(f"{name}={env[name]}".encode() + b"\0" for name in sorted(env)) + b"\0"
    if len(body) > size - 4:
        raise EnvError(f"the U-Boot environment is over {size} bytes")
    data = body + b"\xff" * (size - 4 - len(body))
    return zlib.crc32(data).to_bytes(4, "little") + data


def decode(blob: bytes) -> dict[str, str]:
    """The variables in a U-Boot environment; EnvError when its CRC does not match."""
    if len(blob) < 5:
        raise EnvError("the U-Boot environment is empty")
    crc, data = int.from_bytes(blob[:4], "little"), blob[4:]
    if zlib.crc32(data) != crc:
        raise EnvError("the U-Boot environment's CRC does not match (not written or damaged)")
    env: dict[str, str] = {}
    for entry in data.split(b"\0"):
        if not entry:
            break  # the empty entry after the last one ends the list
        name, sep, value = entry.partition(b"=")
        if not sep:
            raise EnvError(f"U-Boot environment entry {entry[:40]!r} has no '='")
        env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def read(path: Path, size: int = ENV_SIZE) -> dict[str, str]:
    return decode(read_bounded(path, size, "U-Boot environment"))


def write(path: Path, env: dict[str, str], size: int = ENV_SIZE) -> None:
    """``saveenv``: the whole environment at once (crash-safe: old or new, never half)."""
    atomic_write(path, encode(env, size), mode=0o644)


def attempts(env: dict[str, str], bootname: str) -> int:
    """``BOOT_<name>_LEFT`` as RAUC reads it (hex; missing or garbled counts as 0)."""
    try:
        return int(env.get(f"BOOT_{bootname}_LEFT", "0") or "0", 16)
    except ValueError:
        return 0


def choose_slot(env: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """One run of the boot script: (the slot it boots, the environment it saved).

    ``None`` means no slot had attempts left: the script reset every counter, saved,
    and reset the board (run it again to see what boots next).
    """
    env = dict(env)
    env.setdefault("BOOT_ORDER", "A B")
    if not env["BOOT_ORDER"]:
        env["BOOT_ORDER"] = "A B"  # `test -n "${BOOT_ORDER}"` fails on an empty one too
    for name in BOOTNAMES:
        if not env.get(f"BOOT_{name}_LEFT"):
            env[f"BOOT_{name}_LEFT"] = str(ATTEMPTS)
    for slot in env["BOOT_ORDER"].split():
        if slot in BOOTNAMES and attempts(env, slot) > 0:
            env[f"BOOT_{slot}_LEFT"] = f"{attempts(env, slot) - 1:x}"  # setexpr writes hex
            return slot, env
    for name in BOOTNAMES:
        env[f"BOOT_{name}_LEFT"] = str(ATTEMPTS)
    return None, env


# What RAUC's U-Boot backend does to the environment (src/bootchooser.c, 1.8), for the
# simulator: the same variables, the same values.
def slot_good(env: dict[str, str], bootname: str) -> bool:
    """RAUC's boot status "good": in BOOT_ORDER with attempts left."""
    return bootname in env.get("BOOT_ORDER", "").split() and attempts(env, bootname) > 0


def primary(env: dict[str, str]) -> str | None:
    """RAUC's "primary" slot: the first in BOOT_ORDER with attempts left."""
    for slot in env.get("BOOT_ORDER", "").split():
        if slot in BOOTNAMES and attempts(env, slot) > 0:
            return slot
    return None


def mark_good(env: dict[str, str], bootname: str) -> dict[str, str]:
    """``rauc status mark-good``: the slot's attempts back to the default."""
    return env | {f"BOOT_{bootname}_LEFT": f"{ATTEMPTS:x}"}


def mark_bad(env: dict[str, str], bootname: str) -> dict[str, str]:
    """``rauc status mark-bad`` (and the first step of an install into the slot): out of
    BOOT_ORDER, no attempts left."""
    order = " ".join(s for s in env.get("BOOT_ORDER", "").split() if s != bootname)
    return env | {"BOOT_ORDER": order, f"BOOT_{bootname}_LEFT": "0"}


def set_primary(env: dict[str, str], bootname: str) -> dict[str, str]:
    """``rauc status mark-active`` (and an install's last step): first in BOOT_ORDER,
    with the primary's attempts."""
    # RAUC falls back to its own slot order only when BOOT_ORDER cannot be read at all
    current = env["BOOT_ORDER"].split() if "BOOT_ORDER" in env else list(BOOTNAMES)
    order = " ".join([bootname, *(s for s in current if s != bootname)])
    return env | {"BOOT_ORDER": order, f"BOOT_{bootname}_LEFT": str(ATTEMPTS)}
