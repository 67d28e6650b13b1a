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

import re
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


# -- the boot script (boot.scr) -------------------------------------------------------------
# U-Boot keeps the environment as uboot.env in the boot (FAT) partition on the Pi
# (u-boot-rpi's CONFIG_ENV_IS_IN_FAT) and in flash under QEMU (qemu_arm64), so the script
# does not rely on either: it imports uboot.env itself and writes it back with fatwrite,
# the whole environment (on the Pi, U-Boot loads that file in place of its defaults at
# start, so a file with only our variables would lose its bootcmd). The scratch address
# is the kernel's: boot.scr runs from ${scriptaddr}, which a load there would overwrite.
ENV_FILE = "uboot.env"
ROOT_PARTITIONS = {"A": 2, "B": 3}  # slot -> partition number on the card
# Appended when the environment does not set them (the test's uboot.env does): the Pi's
# consoles (HDMI/DSI and the GPIO UART) and a quiet boot for the kiosk screen.
DEFAULT_CONSOLE = "console=tty1 console=ttyS1,115200"
DEFAULT_BOOTARGS = "quiet loglevel=3 logo.nologo vt.global_cursor_default=0"


def boot_script(diskid: str) -> str:
    """``boot.cmd``, for ``mkimage -T script``: RAUC's boot-count logic (as
    :func:`choose_slot`), then the booted slot's own kernel and initrd
    (``/boot/vmlinuz``, ``/boot/initrd.img`` in that root: an update changes them too),
    ``root=PARTUUID=<diskid>-0N`` and ``rauc.slot=<name>`` (how RAUC knows what booted)."""
    if not re.fullmatch(r"[0-9a-f]{8}", diskid):
        raise EnvError(f"disk id {diskid!r} is not 8 lowercase hex digits")
    env_size = f"0x{ENV_SIZE:x}"
    save = (
        f"env export -c -s {env_size} ${{kernel_addr_r}}; "
        f"fatwrite ${{devtype}} ${{devnum}}:1 ${{kernel_addr_r}} {ENV_FILE} {env_size}"
    )
    lines = [
        "# tillbox A/B boot: generated by drivers/uboot.py (boot_script); RAUC's U-Boot logic",
        f"if load ${{devtype}} ${{devnum}}:1 ${{kernel_addr_r}} {ENV_FILE}; then "
        f"env import -c ${{kernel_addr_r}} {env_size}; fi",
        'test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"',
        *(f'test -n "${{BOOT_{n}_LEFT}}" || setenv BOOT_{n}_LEFT {ATTEMPTS}' for n in BOOTNAMES),
        "setenv tillbox_slot",
        'for BOOT_SLOT in "${BOOT_ORDER}"; do',
        '  if test "x${tillbox_slot}" != "x"; then',
        "    true",
    ]
    for name in BOOTNAMES:
        lines += [
            f'  elif test "x${{BOOT_SLOT}}" = "x{name}"; then',
            f"    if test ${{BOOT_{name}_LEFT}} -gt 0; then",
            f"      setexpr BOOT_{name}_LEFT ${{BOOT_{name}_LEFT}} - 1",
            f"      setenv tillbox_slot {name}",
            f"      setenv tillbox_part {ROOT_PARTITIONS[name]}",
            "    fi",
        ]
    lines += [
        "  fi",
        "done",
        'if test -z "${tillbox_slot}"; then',
        "  echo tillbox: no slot has attempts left, resetting the counters",
        *(f"  setenv BOOT_{n}_LEFT {ATTEMPTS}" for n in BOOTNAMES),
        f"  {save}",
        "  reset",
        "fi",
        f'test -n "${{tillbox_console}}" || setenv tillbox_console "{DEFAULT_CONSOLE}"',
        f'test -n "${{tillbox_bootargs}}" || setenv tillbox_bootargs "{DEFAULT_BOOTARGS}"',
        save,
        # The Pi firmware puts cmdline.txt (and its own video= and the like) into the
        # device tree it hands U-Boot; booti would replace it with bootargs. Keep it
        # first, so the technician's cmdline.txt still counts and our root= (the slot)
        # and console, coming later, win. QEMU's tree has none: the variable stays empty.
        "setenv tillbox_fwargs",
        'if test -n "${fdt_addr}" && fdt addr ${fdt_addr}; then '
        "fdt get value tillbox_fwargs /chosen bootargs; fi",
        "echo tillbox: booting slot ${tillbox_slot} (partition ${tillbox_part})",
        f"setenv bootargs ${{tillbox_fwargs}} ${{tillbox_console}} "
        f"root=PARTUUID={diskid}-0${{tillbox_part}} ro "
        "rootfstype=ext4 rootwait fsck.repair=yes net.ifnames=0 rauc.slot=${tillbox_slot} "
        "${tillbox_bootargs}",
        # Debian's arm64 vmlinuz is gzip-compressed: booti unpacks it there
        'test -n "${kernel_comp_addr_r}" || setenv kernel_comp_addr_r 0x48000000',
        'test -n "${kernel_comp_size}" || setenv kernel_comp_size 0x3000000',
        "if load ${devtype} ${devnum}:${tillbox_part} ${kernel_addr_r} /boot/vmlinuz; then",
        "  if load ${devtype} ${devnum}:${tillbox_part} ${ramdisk_addr_r} /boot/initrd.img; then",
        "    booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}",
        "  fi",
        "fi",
        # a slot that cannot even be loaded (an empty slot B on a new card) is out of
        # attempts at once: the next boot tries the other
        "echo tillbox: slot ${tillbox_slot} does not boot, trying the other",
        "setenv BOOT_${tillbox_slot}_LEFT 0",
        save,
        "reset",
    ]
    return "\n".join(lines) + "\n"
