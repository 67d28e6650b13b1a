"""RAUC, through its command line: bundles, their signatures, and the till's slots.

Every call to ``rauc`` goes through :func:`run`: a time limit, at most
``OUTPUT_LIMIT`` bytes of its output read, and its errors turned into one line that
says what to do. The region builds and signs bundles with :func:`bundle` and
:func:`resign`; anyone checks one with :func:`info` (signature first, then the
manifest). On the till, :class:`RaucUpdater` is the :class:`appliance.updates.Updater`
behind ``rauc://``: ``rauc status``/``install``/``status mark-good`` talk to the RAUC
service over D-Bus, which writes the slots and U-Boot's environment (``fw_setenv``).
That API is root's: the kiosk (not root) hands its ``install`` and ``reboot`` to
root's update service (:mod:`drivers.update_requests`).

:func:`system_conf` and :func:`keyring_conf` are the one home of how tillbox configures
RAUC: slots by boot name, U-Boot, its status on the data partition, and a keyring that
only trusts code-signing certificates, checked at the bundle's signing time (a Pi has
no clock battery: at boot its clock may be years behind).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.boundedio import MiB, TooLarge, read_stream
from appliance.errors import TillError
from appliance.updates import (
    BundleInfo,
    BundleRejected,
    ImageInfo,
    InstallFailed,
    Progress,
    SlotState,
    UpdaterBusy,
    UpdaterError,
    UpdaterStatus,
)

if TYPE_CHECKING:
    from appliance.datadir import DataDir

RAUC = os.environ.get("TILLBOX_RAUC", "rauc")
OUTPUT_LIMIT = 1 * MiB  # rauc's answers are a few KiB; more is not rauc talking
QUICK_S = 60.0  # status, info, mark-good
INSTALL_S = 3600.0  # writing a root file system to a slow SD card
ROOT_CLASS = "rootfs"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def last_error(self) -> str:
        """rauc's own reason, on one line (its last error line, without log noise)."""
        for text in (self.out, self.err):
            for line in text.splitlines():
                if line.startswith("LastError:"):  # the service's reason, from `install`
                    return line.removeprefix("LastError:").strip()
        for text in (self.err, self.out):  # its errors go to stderr, its progress to stdout
            lines = [
                ln.strip()
                for ln in text.splitlines()
                if ln.strip() and "rauc-Message" not in ln and not ln.startswith("(rauc:")
            ]
            if lines:
                return lines[-1]
        return f"rauc exited with status {self.code}"


def run(
    args: Sequence[str], *, timeout: float = QUICK_S, env: dict[str, str] | None = None
) -> Result:
    """``rauc ARGS``, its output read with a cap (into files, so a flood costs disk, not
    memory, and never blocks the pipe)."""
    argv = [RAUC, *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                env=env,
                check=False,
            )
        except FileNotFoundError:
            raise UpdaterError(
                f"{RAUC} is not installed; install Debian's rauc (`apt-get install rauc`)"
            ) from None
        except subprocess.TimeoutExpired:
            raise UpdaterError(
                f"`rauc {' '.join(args[:2])}` did not answer within {timeout:.0f} s; check "
                "the rauc service (`systemctl status rauc`)"
            ) from None
        texts = []
        for stream in (out, err):
            stream.seek(0)
            try:
                texts.append(
                    read_stream(stream, OUTPUT_LIMIT, "rauc's output").decode("utf-8", "replace")
                )
            except TooLarge:
                raise UpdaterError("rauc wrote more than 1 MiB of output; run it by hand") from None
    return Result(proc.returncode, texts[0], texts[1])


# -- configuration ---------------------------------------------------------------------------
def keyring_section(keyring: Path) -> str:
    """The ``[keyring]`` a till verifies bundles with: only certificates for code signing
    (a TLS or e-mail certificate from the same CA cannot sign a release), validity
    checked at the bundle's signing time, not the Pi's clock."""
    return f"[keyring]\npath={keyring}\ncheck-purpose=codesign\nuse-bundle-signing-time=true\n"


def keyring_conf(keyring: Path, compatible: str = "tillbox-verify") -> str:
    """A ``system.conf`` with only a keyring: what ``rauc info`` needs off the till."""
    return f"[system]\ncompatible={compatible}\nbootloader=noop\n\n{keyring_section(keyring)}"


def system_conf(
    compatible: str,
    slots: dict[str, Path],
    keyring: Path,
    data_directory: Path,
    bootloader: str = "uboot",
    mount_prefix: Path | None = None,
) -> str:
    """The till's ``/etc/rauc/system.conf``: the root slots by boot name (A, B), U-Boot,
    RAUC's own status kept on the data partition (the slots are read-only)."""
    text = (
        "[system]\n"
        f"compatible={compatible}\n"
        f"bootloader={bootloader}\n"
        f"data-directory={data_directory}\n"
        + (f"mountprefix={mount_prefix}\n" if mount_prefix else "")
        + f"\n{keyring_section(keyring)}"
    )
    for index, (bootname, device) in enumerate(sorted(slots.items())):
        text += f"\n[slot.{ROOT_CLASS}.{index}]\ndevice={device}\ntype=ext4\nbootname={bootname}\n"
    return text


class _Conf:
    """``--conf FILE`` for a keyring given as a path: a temporary system.conf."""

    def __init__(self, keyring: Path | None, conf: Path | None) -> None:
        self._dir: str | None = None
        self.args: list[str] = []
        if conf is not None:
            self.args = ["--conf", str(conf)]
        elif keyring is not None:
            if not Path(keyring).is_file():
                raise TillError(f"keyring {keyring} does not exist; pass the release certificate")
            self._dir = tempfile.mkdtemp(prefix="tillbox-rauc-")
            path = Path(self._dir) / "system.conf"
            path.write_text(keyring_conf(Path(keyring).absolute()))
            self.args = ["--conf", str(path)]

    def __enter__(self) -> list[str]:
        return self.args

    def __exit__(self, *exc: object) -> None:
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


# -- bundles ----------------------------------------------------------------------------------
_SIGNER = re.compile(r"Verified (?:detached |inline )?signature by '([^']*)'")


def rejection(bundle: Path, reason: str) -> TillError:
    """rauc's reason for refusing a bundle as one line a technician can act on."""
    name = Path(bundle).name
    low = reason.lower()
    if "no such file" in low:
        return TillError(f"bundle {bundle} does not exist; check the path")
    if "payload is corrupted" in low or "verification of data area failed" in low:
        return BundleRejected(
            f"{name} was changed or damaged after it was signed (its contents do not match "
            "its signed hash tree); download or copy it again"
        )
    if "signature verification failed" in low:
        if "verify error" in low:  # the chain: an unknown signer, a wrong purpose, expired
            detail = reason.split("Verify error:", 1)[-1].strip()
            return BundleRejected(
                f"{name} is not signed by a release key this till trusts ({detail}); get "
                "the bundle from your region's release page"
            )
        return BundleRejected(
            f"{name} was changed or damaged after it was signed (its signature does not "
            "match its contents); download or copy it again"
        )
    if "invalid bundle" in low or "bundle format" in low or "squashfs" in low or "seek" in low:
        return BundleRejected(
            f"{name} is not a complete RAUC bundle ({reason}); it may be truncated: "
            "download or copy it again"
        )
    if "compatible" in low:
        return UpdaterError(f"{name} is for other hardware ({reason}); use this till's bundle")
    return BundleRejected(f"{name} was refused by rauc ({reason})")


def parse_info(bundle: Path, result: Result) -> BundleInfo:
    """``rauc info --output-format=json``'s answer (read only after rauc verified it)."""
    try:
        data = json.loads(result.out)
        images = []
        for entry in data.get("images") or []:
            for slot_class, image in entry.items():
                images.append(
                    ImageInfo(
                        slot_class=str(slot_class),
                        filename=str(image["filename"]),
                        sha256=str(image["checksum"]),
                        size=int(image["size"]),
                    )
                )
        match = _SIGNER.search(result.err)
        return BundleInfo(
            path=str(bundle),
            compatible=str(data["compatible"]),
            version=str(data["version"]),
            signer=match.group(1) if match else "",
            images=tuple(images),
            size=os.stat(bundle).st_size,
        )
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise UpdaterError(
            f"rauc's description of {Path(bundle).name} is not what tillbox reads ({exc})"
        ) from None


def info(
    bundle: Path,
    *,
    keyring: Path | None = None,
    conf: Path | None = None,
    env: dict[str, str] | None = None,
) -> BundleInfo:
    """Verify ``bundle`` against ``keyring`` (or the keyring of ``conf``), then read its
    manifest. Raises BundleRejected (a bad or unknown signature, a truncated file)."""
    with _Conf(keyring, conf) as conf_args:
        result = run([*conf_args, "info", "--output-format=json", str(bundle)], env=env)
    if result.code != 0:
        raise rejection(bundle, result.last_error())
    return parse_info(bundle, result)


def extract(
    bundle: Path, dest: Path, *, keyring: Path | None = None, conf: Path | None = None
) -> None:
    """Verify ``bundle`` and unpack it into the new folder ``dest`` (the simulator's install)."""
    with _Conf(keyring, conf) as conf_args:
        result = run([*conf_args, "extract", str(bundle), str(dest)], timeout=INSTALL_S)
    if result.code != 0:
        raise rejection(bundle, result.last_error())


def check_payload(bundle: Path, *, keyring: Path) -> None:
    """Verify every byte of ``bundle``, not only its signed manifest: a verity bundle's
    ``rauc info`` checks the manifest's signature, and its blocks only as an install
    reads them. Unpacks it into a temporary folder beside it, then removes that."""
    work = Path(tempfile.mkdtemp(prefix=".check-", dir=Path(bundle).absolute().parent))
    try:
        extract(bundle, work / "content", keyring=keyring)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bundle(content: Path, out: Path, *, cert: Path, key: Path, keyring: Path) -> None:
    """``rauc bundle``: sign ``content`` (manifest.raucm + the image) into ``out``,
    checking the new signature against ``keyring``."""
    with _Conf(keyring, None) as conf_args:
        result = run(
            [*conf_args, "--cert", str(cert), "--key", str(key), "bundle",
             "--signing-keyring", str(keyring), str(content), str(out)],
            timeout=INSTALL_S,
        )  # fmt: skip
    if result.code != 0:
        raise TillError(f"rauc could not build the bundle: {result.last_error()}")


def resign(source: Path, out: Path, *, cert: Path, key: Path, trusted: Path, keyring: Path) -> None:
    """``rauc resign``: replace the signature of ``source`` (which must verify against
    ``trusted``) with one by ``cert``/``key`` (checked against ``keyring``)."""
    with _Conf(trusted, None) as conf_args:
        result = run(
            [*conf_args, "--keyring", str(trusted), "--cert", str(cert), "--key", str(key),
             "resign", "--signing-keyring", str(keyring), str(source), str(out)],
            timeout=INSTALL_S,
        )  # fmt: skip
    if result.code != 0:
        reason = result.last_error()
        if "signature verification failed" in reason.lower() and not Path(out).exists():
            raise rejection(source, reason)
        raise TillError(f"rauc could not re-sign {source.name}: {reason}")


# -- the till's slots -------------------------------------------------------------------------
def parse_status(text: str) -> UpdaterStatus:
    """``rauc status --detailed --output-format=json``: the root slots, booted and other."""
    try:
        data = json.loads(text)
        slots: dict[str, SlotState] = {}
        names: dict[str, str] = {}
        for entry in data["slots"]:
            for name, slot in entry.items():
                if slot.get("class") != ROOT_CLASS:
                    continue
                status = slot.get("slot_status") or {}
                bundle = status.get("bundle") or {}
                checksum = status.get("checksum") or {}
                bootname = str(slot["bootname"])
                names[name] = bootname
                slots[bootname] = SlotState(
                    bootname=bootname,
                    name=name,
                    state=str(slot.get("state")),
                    good=slot.get("boot_status") == "good",
                    version=bundle.get("version"),
                    sha256=checksum.get("sha256"),
                )
        booted = slots[str(data["booted"])]
        others = [s for b, s in sorted(slots.items()) if b != booted.bootname]
        if len(others) != 1:
            raise ValueError(f"{len(slots)} root slots, tillbox expects two")
        return UpdaterStatus(
            compatible=str(data["compatible"]),
            booted=booted,
            other=others[0],
            primary=names.get(str(data.get("boot_primary"))),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UpdaterError(
            f"rauc's status is not what tillbox reads ({exc}); check /etc/rauc/system.conf "
            "names two rootfs slots with boot names A and B"
        ) from None


_PROGRESS = re.compile(r"^\s*(\d{1,3})% (.*)$")


class RaucUpdater:
    """The real thing: RAUC's service (D-Bus) with U-Boot. ``url``: ``rauc://`` (RAUC's
    /etc/rauc/system.conf) or ``rauc:///path/system.conf`` for ``rauc info``."""

    def __init__(
        self,
        url: str = "rauc://",
        env: dict[str, str] | None = None,
        data_dir: DataDir | None = None,
    ) -> None:
        self.url = url
        path = url.removeprefix("rauc://")
        self.conf = Path(path) if path else None
        self.env = env
        self.data_dir = data_dir  # where a caller that is not root hands root its install

    def _run(self, *args: str, timeout: float = QUICK_S) -> Result:
        return run(args, timeout=timeout, env=self.env)

    def status(self) -> UpdaterStatus:
        result = self._run("status", "--detailed", "--output-format=json")
        if result.code != 0 and "already processing" in result.last_error():
            # RAUC's service takes one call at a time: while it installs, even its status
            # is refused. Say so, rather than send the technician to a healthy service.
            raise UpdaterBusy(
                "rauc is installing an update and answers once it has finished (a few "
                "minutes); try again then"
            )
        if result.code != 0:
            raise UpdaterError(
                f"rauc status failed ({result.last_error()}); check the rauc service "
                "(`systemctl status rauc`)"
            )
        return parse_status(result.out)

    def inspect(self, bundle: Path) -> BundleInfo:
        return info(bundle, conf=self.conf, env=self.env)

    def install(self, bundle: Path, progress: Progress | None = None) -> None:
        if os.geteuid() != 0:  # the kiosk: RAUC's D-Bus API is root's (rauc-dbus.conf)
            from drivers import update_requests

            update_requests.ask(self.data_dir, "install", bundle, progress, timeout=INSTALL_S)
            return
        result = self._run("install", str(Path(bundle).absolute()), timeout=INSTALL_S)
        if progress:
            for line in result.out.splitlines():
                match = _PROGRESS.match(line)
                if match:
                    progress(min(100, int(match.group(1))), match.group(2).strip())
        if result.code == 0:
            return
        reason = result.last_error()
        low = reason.lower()
        if "signature" in low or ("bundle" in low and "format" in low):
            raise rejection(bundle, reason)
        if "compatible" in low:
            raise UpdaterError(f"{Path(bundle).name} is for other hardware ({reason})")
        raise InstallFailed(
            f"the install failed ({reason}); the running system is untouched: check the "
            "card (`tillbox selftest --only disk`) and try again"
        )

    def _mark(self, what: str) -> None:
        result = self._run("status", what, "booted")
        if result.code != 0:
            raise UpdaterError(f"rauc status {what} failed ({result.last_error()})")

    def mark_good(self) -> None:
        self._mark("mark-good")

    def mark_bad(self) -> None:
        self._mark("mark-bad")

    def reboot(self) -> None:
        if os.geteuid() != 0:  # `systemctl reboot` is denied to a service user
            from drivers import update_requests

            update_requests.ask(
                self.data_dir, "reboot", None, None, timeout=update_requests.REBOOT_S
            )
            return
        try:
            subprocess.run(["systemctl", "reboot"], check=True, timeout=QUICK_S)
        except (OSError, subprocess.SubprocessError) as exc:
            raise UpdaterError(f"cannot restart the till ({exc}); switch it off and on") from None
