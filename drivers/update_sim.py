"""A simulated A/B card: RAUC's slots and U-Boot's boot counting, in a folder (``sim://``).

It behaves as RAUC 1.8 with its U-Boot backend and RAUC's boot script do, from the same
documented interface (:mod:`drivers.uboot`):

* the U-Boot environment is a real one (``uboot.env``, the bytes ``fw_printenv`` reads)
  with ``BOOT_ORDER`` and ``BOOT_A_LEFT``/``BOOT_B_LEFT``;
* :meth:`power_on` runs the boot script: the first slot in ``BOOT_ORDER`` with attempts
  left loses one and boots; none left resets the counters and the board;
* an install verifies the bundle with the real ``rauc`` (``rauc info``/``rauc extract``
  against the keyring: the simulator fakes the card, not the cryptography), marks the
  target slot bad, writes its image, records the slot's status, then makes it the
  primary with 3 attempts, in RAUC's order, so a power cut at any point leaves the
  running slot first and the target unbootable;
* ``mark_good``/``mark_bad`` change the booted slot's counter and ``BOOT_ORDER`` as
  ``rauc status mark-good``/``mark-bad`` do.

Faults, as a technician's bench or a test asks for them, come from ``faults.json`` in
the folder: ``{"power_cut_after_bytes": N}`` cuts the power once N bytes of an image are
written (the install raises :class:`PowerCut`; build a new simulator on the folder and
:meth:`power_on` it, as the card would be after the cut).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.boundedio import KiB, read_bounded
from appliance.fsutil import atomic_write
from appliance.updates import (
    BundleInfo,
    InstallFailed,
    Progress,
    SlotState,
    UpdaterError,
    UpdaterStatus,
)
from drivers import rauc, uboot

SLOT_SIZE = 4 << 30  # what a slot holds (the card's root partitions)
STATE_LIMIT = 64 * KiB
CHUNK = 1 << 20


class PowerCut(BaseException):  # not an error: the lights went out
    """The simulated power went off (a fault asked for in faults.json)."""


class SimulatedUpdater:
    """The card in ``folder``: ``uboot.env``, ``slot-A.img``, ``slot-B.img``,
    ``slots.json`` (RAUC's per-slot status), ``booted`` (the kernel's ``rauc.slot=``)."""

    def __init__(
        self,
        folder: Path,
        *,
        compatible: str,
        keyring: Path | None,
        factory_version: str,
        url: str = "sim://",
    ) -> None:
        self.url = url
        self.folder = Path(folder)
        self.compatible = compatible
        self.keyring = keyring
        if not (self.folder / "uboot.env").exists():
            self._flash(factory_version)

    # -- the card ---------------------------------------------------------------------------
    @property
    def env_path(self) -> Path:
        return self.folder / "uboot.env"

    def slot_path(self, bootname: str) -> Path:
        return self.folder / f"slot-{bootname}.img"

    def _flash(self, version: str) -> None:
        """A fresh card as the image writes it: slot A holds the factory system."""
        self.folder.mkdir(parents=True, exist_ok=True)
        uboot.write(self.env_path, {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"})
        for name in uboot.BOOTNAMES:
            self.slot_path(name).touch()
        self._save_slots({"A": {"version": version, "compatible": self.compatible}})
        self.power_on()

    def env(self) -> dict[str, str]:
        return uboot.read(self.env_path)

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.folder / name
        if not path.exists():
            return {}
        try:
            data = json.loads(read_bounded(path, STATE_LIMIT, f"the simulated card's {name}"))
        except ValueError:
            raise UpdaterError(
                f"{path} is not JSON; fix or delete it (the simulated card's state)"
            ) from None
        return data if isinstance(data, dict) else {}

    def _slots(self) -> dict[str, Any]:
        return self._read_json("slots.json")

    def _save_slots(self, data: dict[str, Any]) -> None:
        atomic_write(self.folder / "slots.json", json.dumps(data, sort_keys=True).encode())

    def booted(self) -> str | None:
        path = self.folder / "booted"
        if not path.exists():
            return None  # powered off
        return (
            read_bounded(path, STATE_LIMIT, "the simulated card's booted").decode().strip() or None
        )

    def power_on(self) -> str:
        """Boot: U-Boot's script picks the slot (resetting the board at most once)."""
        for _ in range(2):
            chosen, env = uboot.choose_slot(self.env())
            uboot.write(self.env_path, env)  # saveenv, in both branches of the script
            if chosen:
                atomic_write(self.folder / "booted", chosen.encode())
                return chosen
        raise UpdaterError("the simulated card has no bootable slot")  # unreachable: reset

    def reboot(self) -> None:
        self.power_on()

    def _faults(self) -> dict[str, Any]:
        return self._read_json("faults.json")

    # -- RAUC's side --------------------------------------------------------------------------
    def _booted_or_fail(self) -> str:
        booted = self.booted()
        if booted is None:
            raise UpdaterError("the simulated card is off; power it on")
        return booted

    def status(self) -> UpdaterStatus:
        booted = self._booted_or_fail()
        env, slots = self.env(), self._slots()

        def slot(bootname: str) -> SlotState:
            info = slots.get(bootname) or {}
            return SlotState(
                bootname=bootname,
                name=f"rootfs.{uboot.BOOTNAMES.index(bootname)}",
                state="booted" if bootname == booted else "inactive",
                good=uboot.slot_good(env, bootname),
                version=info.get("version"),
                sha256=info.get("sha256"),
            )

        other = next(b for b in uboot.BOOTNAMES if b != booted)
        return UpdaterStatus(
            compatible=self.compatible,
            booted=slot(booted),
            other=slot(other),
            primary=uboot.primary(env),
        )

    def inspect(self, bundle: Path) -> BundleInfo:
        return rauc.info(bundle, keyring=self._keyring())

    def _keyring(self) -> Path:
        if self.keyring is None or not self.keyring.is_file():
            raise UpdaterError(
                f"the simulated updater's keyring {self.keyring or '(none)'} does not exist; "
                "set [updates] keyring in tillbox.toml to the release certificate"
            )
        return self.keyring

    def install(self, bundle: Path, progress: Progress | None = None) -> None:
        report = progress or (lambda _pct, _what: None)
        booted = self._booted_or_fail()
        target = next(b for b in uboot.BOOTNAMES if b != booted)
        report(0, "Checking bundle")
        info = rauc.info(bundle, keyring=self._keyring())  # before a byte is written
        if info.compatible != self.compatible:
            raise UpdaterError(
                f"Compatible mismatch: Expected '{self.compatible}' but bundle manifest has "
                f"'{info.compatible}'"
            )
        images = [i for i in info.images if i.slot_class == rauc.ROOT_CLASS]
        if len(images) != 1:
            raise InstallFailed(f"{Path(bundle).name} holds no single rootfs image")
        image = images[0]
        if image.size > SLOT_SIZE:
            raise InstallFailed(f"the image ({image.size} bytes) is larger than the slot")
        work = Path(tempfile.mkdtemp(prefix=".extract-", dir=self.folder))
        try:
            rauc.extract(bundle, work / "bundle", keyring=self._keyring())
            report(20, f"Marking slot {target} as non-bootable")
            uboot.write(self.env_path, uboot.mark_bad(self.env(), target))
            # RAUC keeps the slot's old status until the new image is written: after a
            # cut, the slot says what it held before, and the bootloader will not try it.
            slots = self._slots()
            if (slots.get(target) or {}).get("sha256") == image.sha256:
                report(40, "Skipping update for correct image")  # RAUC's install-same=false
            else:
                report(40, f"Copying image to rootfs.{uboot.BOOTNAMES.index(target)}")
                digest = self._write_slot(work / "bundle" / image.filename, target)
                if digest != image.sha256:
                    raise InstallFailed(
                        f"slot {target} does not read back as the image; the card may be failing"
                    )
            slots[target] = {
                "version": info.version,
                "compatible": info.compatible,
                "sha256": image.sha256,
                "installed": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            self._save_slots(slots)
            report(90, f"Marking slot {target} as bootable (primary)")
            uboot.write(self.env_path, uboot.set_primary(self.env(), target))
            report(100, "Installing done")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _write_slot(self, image: Path, target: str) -> str:
        cut_after = self._faults().get("power_cut_after_bytes")
        digest = hashlib.sha256()
        written = 0
        with open(image, "rb") as src, open(self.slot_path(target), "wb") as dst:
            while chunk := src.read(CHUNK):
                if isinstance(cut_after, int) and written + len(chunk) > cut_after:
                    dst.write(chunk[: max(0, cut_after - written)])
                    dst.flush()
                    os.fsync(dst.fileno())
                    (self.folder / "booted").unlink(missing_ok=True)  # the board is off
                    raise PowerCut(f"power cut after {cut_after} bytes of slot {target}")
                dst.write(chunk)
                digest.update(chunk)
                written += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        return digest.hexdigest()

    def mark_good(self) -> None:
        uboot.write(self.env_path, uboot.mark_good(self.env(), self._booted_or_fail()))

    def mark_bad(self) -> None:
        uboot.write(self.env_path, uboot.mark_bad(self.env(), self._booted_or_fail()))
