"""Installing, committing and rolling back system updates, and recording each step.

The rules are :mod:`appliance.updates`; the updater is a seam (:class:`Updater`); this
module runs one against the other for a till and writes the log:

* ``update.started`` once the bundle's signature, hardware and version checked out,
  just before the updater writes the other slot (with ``forced`` for a downgrade a
  technician forced);
* ``update.installed`` when the slot is written and the bootloader will try it next;
* ``update.failed`` when the updater failed, or an install was cut off (seen at the
  next boot);
* ``update.committed`` when the new system proved healthy and marked its slot good;
* ``update.rolled_back`` when it did not, or the bootloader fell back by itself.

A bundle is first copied onto the data partition (``DIR/updates/``): a USB stick may be
pulled half-way, and the updater then checks and installs a file nobody else can change.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from appliance import events as ev
from appliance import queries, saleopen
from appliance.boundedio import CHUNK, UPDATE_BUNDLE_LIMIT, MiB
from appliance.errors import RuleViolation, StorageError, TillError
from appliance.formats.release import parse_version
from appliance.fsutil import fsync_dir
from appliance.updates import (
    SCHEDULE,
    TECHNICIAN,
    Activity,
    BootAction,
    BundleInfo,
    By,
    Health,
    InstallPlan,
    LastUpdate,
    Progress,
    Updater,
    after_boot,
    check_install_time,
    check_reboot_time,
    plan_install,
    restart_due,
)

if TYPE_CHECKING:
    from appliance.datadir import DataDir
    from appliance.till import Till

# Kept free on the data partition after staging a bundle: the log must still be
# able to take a day's sales while the update waits for the reboot.
DATA_RESERVE = 64 * MiB
BUNDLE_SUFFIX = ".raucb"
MAX_BUNDLES_LISTED = 100  # a stick with more files is not a release stick
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\.raucb")


def updates_dir(data_dir: DataDir) -> Path:
    return data_dir.root / "updates"


def activity(till: Till) -> Activity:
    return Activity(
        shift_open=till.current_shift() is not None,
        sale_open=saleopen.is_open(till.data_dir),
    )


def last_update(till: Till) -> LastUpdate | None:
    rows = queries.latest_of_types(till.log, ev.UPDATE_TYPES, 1)
    if not rows:
        return None
    seq, type_, _wall_ms, payload = rows[0]
    return LastUpdate(seq, type_, payload)


# -- finding and staging a bundle -----------------------------------------------------------
def find_bundles(folder: Path) -> list[Path]:
    """The ``*.raucb`` files at the top of ``folder`` (a USB stick), sorted by name."""
    try:
        with os.scandir(folder) as entries:
            found = []
            for n, entry in enumerate(entries):
                if n >= 10 * MAX_BUNDLES_LISTED:
                    break
                if (
                    entry.name.endswith(BUNDLE_SUFFIX)
                    and entry.name.isprintable()  # its name goes into one-line messages
                    and entry.is_file(follow_symlinks=False)
                ):
                    found.append(Path(entry.path))
    except OSError as exc:
        raise TillError(
            f"cannot read {folder} ({exc.strerror or exc}); check the USB stick is mounted"
        ) from None
    return sorted(found)[:MAX_BUNDLES_LISTED]


def stick_bundle(folder: Path, updater: Updater) -> BundleInfo:
    """The bundle on a USB stick's top folder to install: the only one there, or the
    newest trusted one for this hardware among several (a damaged or foreign bundle is
    passed over). TillError saying what to copy when there is none; a lone bundle that is
    not trusted gets its own refusal (:class:`BundleRejected`)."""
    found = find_bundles(folder)
    if not found:
        raise TillError(
            f"no update bundle (*.raucb) in {folder}; copy the release bundle to the top "
            "folder of the USB stick"
        )
    if len(found) == 1:
        return _named(updater.inspect(found[0]), found[0])
    compatible = updater.status().compatible
    best: tuple[Any, BundleInfo] | None = None
    for path in found:
        try:
            info = updater.inspect(path)
        except TillError:
            continue  # a damaged or foreign bundle on the stick: not offered
        if info.compatible == compatible:
            version = parse_version(info.version)
            if best is None or version > best[0]:
                best = (version, _named(info, path))
    if best is None:
        raise TillError(
            f"none of the {len(found)} bundles in {folder} is a trusted bundle for "
            f"{compatible}; copy the right one to the stick"
        )
    return best[1]


def choose_bundle(source: Path, updater: Updater) -> Path:
    """The bundle a technician's path names: the file, or a USB stick's (:func:`stick_bundle`)."""
    if not source.is_dir():
        return source
    return Path(stick_bundle(source, updater).path)


@dataclass(frozen=True)
class Offer:
    """What the technician screen offers from a USB stick: install ``bundle``'s version
    over the running one (already checked against the rules but the time of day)."""

    bundle: BundleInfo
    plan: InstallPlan


def offer_from_stick(till: Till, folder: Path, updater: Updater) -> Offer:
    """The install a stick in ``folder`` offers; TillError/RuleViolation saying why none
    (no stick, no bundle, not trusted, other hardware, not newer than the running one,
    installed already and waiting for the restart)."""
    if not folder.is_dir():
        raise TillError(f"no USB stick found at {folder}; plug one in")
    return _offer(till, stick_bundle(folder, updater), updater)


def _offer(till: Till, info: BundleInfo, updater: Updater) -> Offer:
    """The install of the checked bundle ``info``, or RuleViolation while another install
    runs or this version waits for its restart."""
    status = updater.status()
    last = last_update(till)
    pending = after_boot(last, status, install_running=install_running(till.data_dir))
    if pending.kind == "in_progress":
        raise RuleViolation("an update is being installed; wait for it")
    if (
        pending.kind == "awaiting_reboot"
        and last
        and last.payload.get("to_version") == info.version
    ):
        raise RuleViolation(
            f"{info.version} is installed already; it starts when the till restarts (at "
            "shift close, or `tillbox update reboot`)"
        )
    return Offer(info, plan_install(status, info))


def stage(source: Path, data_dir: DataDir, limit: int = UPDATE_BUNDLE_LIMIT) -> Path:
    """Copy ``source`` into ``DIR/updates/incoming/`` (fsynced); refuse a file over
    ``limit`` and one that would leave less than DATA_RESERVE free."""
    folder = updates_dir(data_dir) / "incoming"
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    if Path(source).absolute().parent == folder.absolute():
        raise TillError(f"{source} is the kiosk's own staging copy; pass the bundle itself")
    for old in folder.iterdir():
        old.unlink()  # an earlier, unfinished staging
    # the copy keeps the bundle's name: rauc's messages (and ours) name the file the
    # technician knows
    name = source.name if _SAFE_NAME.fullmatch(source.name) else f"bundle{BUNDLE_SUFFIX}"
    target = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        src = open(source, "rb")
    except OSError as exc:
        raise TillError(
            f"cannot read the bundle {source} ({exc.strerror or exc}); check the path"
        ) from None
    with src:
        size = os.fstat(src.fileno()).st_size
        if size > limit:
            raise TillError(
                f"{source} is {size // MiB} MiB, larger than a release bundle can be "
                f"({limit // MiB} MiB); check it is the right file"
            )
        free = _free_bytes(folder)
        if free - size < DATA_RESERVE:
            raise StorageError(
                f"the data partition has {free // MiB} MiB free and the bundle needs "
                f"{size // MiB} MiB plus {DATA_RESERVE // MiB} MiB kept for the log; free "
                "space (old photos, exports) or use a bigger card"
            )
        try:
            _copy(src, tmp, limit, source)
            os.replace(tmp, target)
            fsync_dir(folder)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(
                f"cannot copy the bundle to {folder} ({exc.strerror or exc}); check the "
                "data partition (`tillbox selftest --only disk`) and the USB stick"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return target


def _free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _copy(src: Any, tmp: Path, limit: int, source: Path) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        copied = 0
        while chunk := src.read(CHUNK):
            copied += len(chunk)
            if copied > limit:  # the file grew while we read it
                raise TillError(f"{source} grew past {limit // MiB} MiB while it was copied")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def install_lock(data_dir: DataDir) -> Iterator[None]:
    """One install at a time (the CLI, the kiosk, the till's own timer)."""
    folder = updates_dir(data_dir)
    folder.mkdir(mode=0o750, exist_ok=True)
    fd = os.open(folder / "install.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuleViolation(
                "another update is being installed; wait for it (`tillbox update status`)"
            ) from None
        yield
    finally:
        os.close(fd)


def install_running(data_dir: DataDir) -> bool:
    path = updates_dir(data_dir) / "install.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# -- installing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class InstallResult:
    plan: InstallPlan
    seq: int  # of update.installed


def install(
    till: Till,
    updater: Updater,
    source: Path,
    *,
    by: By = TECHNICIAN,
    force: bool = False,
    progress: Progress | None = None,
) -> InstallResult:
    """Check, stage, verify and install ``source`` into the other slot, and record it.

    Nothing is recorded for a bundle refused before the install starts (a bad
    signature, other hardware, a downgrade, no room): nothing happened to the till.
    """
    check_install_time(activity(till), by)
    with install_lock(till.data_dir):
        staged = stage(source, till.data_dir)
        try:
            info = updater.inspect(staged)  # the signature is checked before anything else
            info = _named(info, source)
            plan = plan_install(updater.status(), info, by=by, force=force)
            check_install_time(activity(till), by)  # a sale may have opened meanwhile
            till.record(ev.UPDATE_STARTED, plan.payload(bundle=source.name, size=info.size))
            try:
                updater.install(staged, progress)
            except TillError as exc:
                till.record(ev.UPDATE_FAILED, plan.payload(reason=str(exc)[:500]))
                raise
            event = till.record(ev.UPDATE_INSTALLED, plan.payload())
        finally:
            staged.unlink(missing_ok=True)
    return InstallResult(plan, event.seq)


def _named(info: BundleInfo, source: Path) -> BundleInfo:
    """The bundle's info with the name the technician knows (not the staging copy's)."""
    return replace(info, path=str(source))


# -- after a boot ---------------------------------------------------------------------------
def selftest_this_boot(till: Till, boot_id: str) -> tuple[str, tuple[str, ...]]:
    """("pass"|"fail"|"missing", failed fatal checks) of this boot's latest self-test."""
    for seq, _type, _wall, payload in queries.latest_of_types(
        till.log, (ev.SELFTEST_RECORDED,), 20
    ):
        event = till.log.event(seq)
        if event is None or event.boot_id != boot_id:
            continue
        failed = tuple(
            str(c.get("name"))
            for c in payload.get("checks", [])
            if isinstance(c, dict) and c.get("fatal") and c.get("result") == "fail"
        )
        return ("fail" if failed else "pass"), failed
    return "missing", ()


def settle_boot(till: Till, updater: Updater, health: Health, *, reboot: bool = True) -> BootAction:
    """The boot-time check: commit, reject or record the last update; keep the booted
    slot good. Called once the kiosk is READY and the sync agent has started (or has
    had its time). A rejected system is marked bad and restarted into the old one."""
    last = last_update(till)
    status = updater.status()
    action = after_boot(last, status, health, install_running=install_running(till.data_dir))
    base: dict[str, Any] = dict(last.payload) if last else {}
    if action.kind == "reject":
        updater.mark_bad()
        till.record(ev.UPDATE_ROLLED_BACK, base | {"reason": action.reason, "decided_by": "health"})
        if reboot:
            updater.reboot()
        return action
    if action.mark_good:
        updater.mark_good()
    if action.kind == "commit":
        till.record(ev.UPDATE_COMMITTED, base | {"decided_by": "health"})
    elif action.kind == "rolled_back":
        till.record(
            ev.UPDATE_ROLLED_BACK, base | {"reason": action.reason, "decided_by": "bootloader"}
        )
    elif action.kind == "interrupted":
        till.record(ev.UPDATE_FAILED, base | {"reason": action.reason})
    return action


def restart_for_update(till: Till, open_updater: Callable[[], Updater]) -> str:
    """Restart into an installed update when :func:`appliance.updates.restart_due` says
    so (``tillbox shift close``, and the root unit's ``tillbox update apply`` that sees
    the kiosk's closes); "" when nothing waits or it is not time.

    The updater is only opened when the log says an install happened: most closes have
    nothing to do and must not wait for (or depend on) the updater."""
    last = last_update(till)
    if last is None or last.type != ev.UPDATE_INSTALLED:
        return ""
    closes = queries.latest_of_types(till.log, (ev.SHIFT_CLOSED,), 1)
    closed_since = bool(closes) and closes[0][0] > last.seq
    if not restart_due(str(last.payload.get("by", TECHNICIAN)), activity(till), closed_since):
        return ""
    updater = open_updater()
    action = after_boot(last, updater.status(), install_running=install_running(till.data_dir))
    if action.kind != "awaiting_reboot":
        return ""
    check_reboot_time(activity(till), SCHEDULE)  # a sale may have opened meanwhile
    updater.reboot()
    return f"restarting into update {last.payload.get('to_version')}"


def awaiting_restart(till: Till, updater: Updater) -> str | None:
    """The version an installed update waits to start in (its slot is the bootloader's
    next choice), or None: what the technician screen's restart button names."""
    last = last_update(till)
    action = after_boot(last, updater.status(), install_running=install_running(till.data_dir))
    if action.kind != "awaiting_reboot" or last is None:
        return None
    return str(last.payload.get("to_version") or "") or None


def restart_now(
    till: Till,
    open_updater: Callable[[], Updater],
    announce: Callable[[], None] | None = None,
) -> None:
    """A technician's restart (``tillbox update reboot``, the technician screen's button):
    refused while a sale is open; a shift may be open, it was their command. The updater
    is opened only once the rule allows it; ``announce`` runs then, before the restart,
    which on a real till ends the caller's process."""
    check_reboot_time(activity(till), TECHNICIAN)
    updater = open_updater()
    if announce is not None:
        announce()
    updater.reboot()


def mark_good(till: Till, updater: Updater) -> BootAction:
    """A technician's ``mark-good``: the booted slot is good; a trial boot commits."""
    last = last_update(till)
    status = updater.status()
    action = after_boot(last, status, install_running=install_running(till.data_dir))
    updater.mark_good()
    if action.kind == "trial":
        till.record(
            ev.UPDATE_COMMITTED, dict(last.payload if last else {}) | {"decided_by": TECHNICIAN}
        )
        return BootAction("commit", mark_good=True)
    return action


# -- the online delivery's records (drivers.update_fetch moves the bytes) ------------------
def this_boot_id() -> str:
    """The kernel's id of this boot (the boot-time check compares it with the install's)."""
    from appliance.log import current_boot_id

    return current_boot_id()


def release_notice_row(till: Till) -> tuple | None:
    """The region's release notice in force as the log's projection keeps it, or None."""
    from appliance import projections
    from appliance.formats import region as fmt

    return projections.region_row(till.log.conn, fmt.RELEASE)


def done_already(till: Till, version: str) -> bool:
    """This till has installed ``version`` before (whatever it runs now): nothing to
    fetch. Not only the newest install: after a technician installs a newer one by hand
    the region's older notice is still in force, and must not be fetched again."""
    return queries.any_of_types_for_version(
        till.log, (ev.UPDATE_INSTALLED, ev.UPDATE_COMMITTED), "to_version", version
    )


def failed_before(till: Till, version: str) -> bool:
    """An install of ``version`` failed or rolled back on this till: the till does not
    try it again by itself (it would fail, restart and fall back in a loop); a
    technician still can, by hand."""
    return queries.any_of_types_for_version(
        till.log, (ev.UPDATE_FAILED, ev.UPDATE_ROLLED_BACK), "to_version", version
    )


def record_download_failed(till: Till, version: str, url: str, reason: str) -> None:
    till.record(ev.UPDATE_DOWNLOAD_FAILED, {"version": version, "url": url, "reason": reason[:300]})


def record_downloaded(till: Till, version: str, url: str, sha256: str, size: int) -> None:
    """``update.downloaded``, once per version (a pass that finds the file whole again
    records nothing more)."""
    rows = queries.latest_of_types(till.log, (ev.UPDATE_DOWNLOADED,), 1)
    if rows and rows[0][3].get("version") == version:
        return
    till.record(
        ev.UPDATE_DOWNLOADED, {"version": version, "url": url, "sha256": sha256, "size": size}
    )


def downloads_dir(data_dir: DataDir) -> Path:
    """Where the sync agent leaves the region's offered bundle (``drivers.update_fetch``
    downloads into it; the technician screen and root's apply install from it)."""
    return updates_dir(data_dir) / "downloads"


def downloaded_bundle(data_dir: DataDir, version: str) -> Path:
    """The whole download of the offered ``version`` (the agent renames its ``.part`` to
    this name only once the size and hash match the notice)."""
    return downloads_dir(data_dir) / f"tillbox-{version}{BUNDLE_SUFFIX}"


def offer_state(till: Till) -> tuple[dict[str, object] | None, str]:
    """The region's release notice in force and one line on where it stands, for
    ``tillbox update status`` and the technician screen: (None, "") without one."""
    import json

    row = release_notice_row(till)
    if row is None:
        return None, ""
    body = json.loads(row[3])
    notice = body["notice"]
    version = notice["version"]
    out: dict[str, object] = {"notice": notice, "ignored": body["ignored"]}
    if body["ignored"]:
        return out, f"the region offers {version}; ignored: {body['ignored']}"
    if done_already(till, version):
        return out | {"state": "installed"}, f"the region offers {version}: installed"
    target = downloaded_bundle(till.data_dir, version)
    part = target.with_name(target.name + ".part")
    if target.exists():
        return out | {"state": "downloaded"}, (
            f"the region offers {version}: downloaded; it installs between shifts"
        )
    have = part.stat().st_size if part.exists() else 0
    # the agent pauses the download while a sale is open; say so only when one is
    paused = " (paused while a sale is open)" if saleopen.is_open(till.data_dir) else ""
    return out | {"state": "downloading", "bytes": have}, (
        f"the region offers {version}: downloading, {have} of {notice['size']} bytes{paused}"
    )


@dataclass(frozen=True)
class RegionOffer:
    """What the technician screen shows of the region's online offer: ``line`` is
    :func:`offer_state`'s ("" without a notice); ``offer`` the install of the downloaded
    bundle a technician may start now, or ``problem`` saying why it cannot be."""

    line: str
    offer: Offer | None = None
    problem: str = ""


def region_offer(till: Till, open_updater: Callable[[], Updater]) -> RegionOffer:
    """The region's offer on this till, and the install its downloaded bundle offers
    (checked like a stick's: signature, hardware, newer, no install running). The
    updater is opened only for a downloaded bundle: most tills have no offer at all."""
    state, line = offer_state(till)
    if state is None or state.get("state") != "downloaded":
        return RegionOffer(line)
    notice = cast("dict[str, Any]", state["notice"])
    bundle = downloaded_bundle(till.data_dir, str(notice["version"]))
    try:
        updater = open_updater()
        return RegionOffer(line, _offer(till, _named(updater.inspect(bundle), bundle), updater))
    except TillError as exc:  # RuleViolation too; also root's apply took the file meanwhile
        return RegionOffer(line, problem=str(exc))


def forget_download(data_dir: DataDir, bundle: Path) -> None:
    """Remove ``bundle`` once installed when it is the region's download (as root's apply
    does): it holds a whole system image of space the log may need; a stick's stays."""
    if bundle.absolute().parent == downloads_dir(data_dir).absolute():
        bundle.unlink(missing_ok=True)
