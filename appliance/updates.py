"""System updates: the seam to the updater, and the rules of when and what to install.

The card holds two read-only root slots (A and B) and the data partition, which updates
never touch. An update is a signed RAUC bundle (:mod:`appliance.formats.release`); the
updater writes it into the slot the till is not running, makes that slot the
bootloader's first choice with a few boot attempts, and the till reboots into it. The
new system commits itself (marks its slot good) only once it is healthy; a system that
crashes, hangs or fails its checks before that runs out of attempts, and U-Boot boots
the previous slot by itself.

The core knows no updater. :class:`Updater` is what it needs from one (RAUC with U-Boot
on the Pi: ``drivers.rauc``; the simulator: ``drivers.update_sim``), the way
:mod:`appliance.devices` defines the printer. This module holds the rules, as pure
functions the CLI, the kiosk's technician screen and the boot-time check all call:

* install only between shifts, or when a technician says so; never during an open sale;
* reboot only at shift close, or when a technician says so; never during an open sale;
* only a bundle for this hardware; a downgrade (or the same version) only when forced;
* commit only when healthy: the self-test's fatal checks pass, the kiosk has drawn its
  first frame (its ``READY=1``) and the sync agent has started;
* what a boot after an install means (:func:`after_boot`): still waiting for the
  reboot, a trial boot of the new slot, a fall back, or an interrupted install.

:mod:`appliance.services.updates` runs them against a till and records the events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from appliance import __version__
from appliance import events as ev
from appliance.errors import RuleViolation, TillError
from appliance.formats.release import parse_version

if TYPE_CHECKING:
    from appliance.datadir import Config, DataDir


class UpdaterError(TillError):
    """The updater is missing, not running, or refused a request; the message says what
    to do. Backends raise their own subclass."""


class UpdaterBusy(UpdaterError):
    """The updater is installing and answers nothing else until it has finished."""


class BundleRejected(TillError):
    """Not a bundle this till may trust: a bad signature, an unknown signer, a truncated
    or damaged file. Nothing was written."""

    exit_code = 4


class InstallFailed(TillError):
    """The updater failed while writing the other slot (the card, the space on it). The
    running slot is untouched; the half-written one stays unbootable."""

    exit_code = 3


@dataclass(frozen=True)
class ImageInfo:
    slot_class: str  # "rootfs"
    filename: str
    sha256: str
    size: int


@dataclass(frozen=True)
class BundleInfo:
    """What the signed manifest of a verified bundle says (read only after the check)."""

    path: str
    compatible: str
    version: str
    signer: str  # the signing certificate's subject, as the updater names it
    images: tuple[ImageInfo, ...] = ()
    size: int = 0  # bytes of the bundle file

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"images": [asdict(i) for i in self.images]}


@dataclass(frozen=True)
class SlotState:
    """One root slot as the updater and the bootloader see it."""

    bootname: str  # "A" or "B": the bootloader's name for it
    name: str  # the updater's name, e.g. "rootfs.0"
    state: str  # "booted", "active" or "inactive" (RAUC's words)
    good: bool  # the bootloader will still try it (RAUC's boot status "good")
    version: str | None = None  # of the bundle installed into it; None when unknown
    sha256: str | None = None


@dataclass(frozen=True)
class UpdaterStatus:
    """The booted slot, the other one, and which the bootloader boots next."""

    compatible: str  # this hardware, as bundles must name it
    booted: SlotState
    other: SlotState
    primary: str | None  # the bootname the bootloader tries first; None: none bootable

    def to_json(self) -> dict[str, Any]:
        return {
            "compatible": self.compatible,
            "booted": asdict(self.booted),
            "other": asdict(self.other),
            "primary": self.primary,
        }


# (percent, what), as the updater reports its progress
Progress = Callable[[int, str], None]


@runtime_checkable
class Updater(Protocol):
    """An A/B updater with a boot-counting bootloader (RAUC + U-Boot, or the simulator).

    ``inspect`` verifies the bundle's signature against the till's keyring before it
    reads the manifest; ``install`` verifies it again before it writes a byte, into the
    slot that is not booted, and makes that slot the bootloader's first choice.
    ``mark_good``/``mark_bad`` are about the booted slot. Failures raise
    :class:`UpdaterError`, :class:`BundleRejected` or :class:`InstallFailed`.
    """

    url: str

    def status(self) -> UpdaterStatus: ...

    def inspect(self, bundle: Path) -> BundleInfo: ...

    def install(self, bundle: Path, progress: Progress | None = None) -> None: ...

    def mark_good(self) -> None: ...

    def mark_bad(self) -> None: ...

    def reboot(self) -> None: ...


UPDATER_GROUP = "tillbox.updater"


def open_updater(config: Config, data_dir: DataDir) -> Updater:
    """The configured updater (``[updates] backend``), from the package that implements
    the seam: the drivers register theirs under the ``tillbox.updater`` entry point, as
    they do the devices (:func:`appliance.devices.open_devices`), so the kiosk, which
    never imports a driver, can install an update too."""
    from appliance.plugins import installed

    found = installed(UPDATER_GROUP)
    if not found:
        raise UpdaterError(
            "no updater is installed (entry point tillbox.updater); reinstall tillbox "
            "with `make venv`"
        )
    factory: Callable[[Config, DataDir], Updater] = found[0].load()
    return factory(config, data_dir)


def running_version(status: UpdaterStatus) -> str:
    """The version the till runs: its slot's bundle version, else (a slot flashed from
    the image, which no bundle wrote) this software's own version."""
    return status.booted.version or __version__


# -- when -----------------------------------------------------------------------------------
TECHNICIAN = "technician"  # a technician's command (the CLI, the technician screen)
SCHEDULE = "schedule"  # the till on its own (between shifts, at shift close)
By = Literal["technician", "schedule"]


@dataclass(frozen=True)
class Activity:
    """What the till is doing: a shift open, a sale open on the kiosk's screen."""

    shift_open: bool
    sale_open: bool


def check_install_time(activity: Activity, by: By) -> None:
    """Installing writes a whole root file system: never while a cashier is selling."""
    if activity.sale_open:
        raise RuleViolation(
            "a sale is open on the kiosk; finish or clear it, then install the update"
        )
    if activity.shift_open and by != TECHNICIAN:
        raise RuleViolation(
            "a shift is open; the till installs updates between shifts (a technician "
            "can install now: `tillbox update install`)"
        )


def check_reboot_time(activity: Activity, by: By) -> None:
    """A reboot takes the till away for a minute: only at shift close or on command."""
    if activity.sale_open:
        raise RuleViolation("a sale is open on the kiosk; finish or clear it, then restart")
    if activity.shift_open and by != TECHNICIAN:
        raise RuleViolation("a shift is open; the till restarts for an update at shift close")


def restart_due(installed_by: str, activity: Activity, shift_closed_since: bool) -> bool:
    """May the till restart by itself into an update it has installed (and that waits
    for its reboot)? Only between shifts, with no sale on the screen, and only at a shift
    close: an install the till made on its own ran between shifts, after the close it
    waited for; a technician's install waits for the next close (or their command)."""
    if activity.sale_open or activity.shift_open:
        return False
    return installed_by == SCHEDULE or shift_closed_since


# -- what -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstallPlan:
    """One install, as the log records it (``update.started`` and what follows)."""

    from_version: str
    to_version: str
    from_slot: str
    to_slot: str
    compatible: str
    signer: str
    downgrade: bool = False  # older than (or the same as) the running version
    forced: bool = False  # a technician forced the downgrade
    by: str = TECHNICIAN

    def payload(self, **more: Any) -> dict[str, Any]:
        return asdict(self) | more


def plan_install(
    status: UpdaterStatus, bundle: BundleInfo, *, by: By = TECHNICIAN, force: bool = False
) -> InstallPlan:
    """The install of ``bundle`` on the till of ``status``, or a RuleViolation saying why not.

    ``bundle`` has been verified already (its manifest is only read after its signature
    checked out). A bundle for other hardware is refused even when forced.
    """
    if bundle.compatible != status.compatible:
        raise RuleViolation(
            f"{Path(bundle.path).name} is for {bundle.compatible!r} hardware and this till "
            f"is {status.compatible!r}; use the bundle built for {status.compatible}"
        )
    running = running_version(status)
    new = parse_version(bundle.version, "the bundle's version")
    try:
        old = parse_version(running, "the running version")
    except TillError:
        old = None  # a development build: any release replaces it
    downgrade = old is not None and new <= old
    if force and by != TECHNICIAN:
        raise RuleViolation("only a technician can force a downgrade")
    if downgrade and not force:
        what = "the version it already runs" if new == old else f"older than the running {old}"
        raise RuleViolation(
            f"{Path(bundle.path).name} is version {new}, {what}; a technician can force it "
            "with --force-downgrade (it is logged)"
        )
    return InstallPlan(
        from_version=running,
        to_version=bundle.version,
        from_slot=status.booted.bootname,
        to_slot=status.other.bootname,
        compatible=status.compatible,
        signer=bundle.signer,
        downgrade=downgrade,
        forced=downgrade and force,
        by=by,
    )


def offer_problem(
    status: UpdaterStatus, version: str, compatible: str, key_id: str, key_ids: list[str]
) -> str:
    """Why a till does not download a release the region offers ("" when it does): a
    version not above the running one, other hardware, a release key not in its keyring
    (the bundle would be refused after the download: the bytes are not fetched)."""
    if compatible != status.compatible:
        return f"it is for {compatible!r} hardware and this till is {status.compatible!r}"
    if key_id not in key_ids:
        return f"its release key {key_id[:16]}... is not in this till's keyring"
    running = running_version(status)
    try:
        old = parse_version(running, "the running version")
    except TillError:
        return ""  # a development build: any release replaces it
    if parse_version(version, "the offered version") <= old:
        return f"version {version} is not newer than the running {running}"
    return ""


# -- commit only when healthy ---------------------------------------------------------------
@dataclass(frozen=True)
class Health:
    """What the boot-time check sees of the new system.

    ``selftest``: "pass" when this boot's latest self-test had no fatal check failing,
    "fail" (with ``failed``, the names) when it had, "missing" when none ran this boot.
    ``kiosk_ready``: the kiosk sent ``READY=1`` (its first frame is drawn).
    ``sync_started``: the sync agent's unit is running.
    """

    selftest: Literal["pass", "fail", "missing"]
    kiosk_ready: bool
    sync_started: bool
    failed: tuple[str, ...] = field(default_factory=tuple)


def health_problems(health: Health) -> list[str]:
    """Why the new system may not commit; empty when it may."""
    problems = []
    if health.selftest == "missing":
        problems.append("the self-test did not run in this boot")
    elif health.selftest == "fail":
        problems.append(f"the self-test failed: {', '.join(health.failed) or 'a fatal check'}")
    if not health.kiosk_ready:
        problems.append("the kiosk did not draw its first frame")
    if not health.sync_started:
        problems.append("the sync agent did not start")
    return problems


@dataclass(frozen=True)
class LastUpdate:
    """The newest ``update.*`` event in the log."""

    seq: int
    type: str
    payload: dict[str, Any]


BootKind = Literal[
    "none",  # nothing pending
    "in_progress",  # an install is running now
    "interrupted",  # an install stopped half-way (a power cut, a crash): update.failed
    "awaiting_reboot",  # installed; the new slot starts at the next boot
    "trial",  # booted into the new slot, not committed yet: gather the health
    "commit",  # healthy: mark the slot good, record update.committed
    "reject",  # unhealthy: mark the slot bad, record update.rolled_back, restart
    "rolled_back",  # the bootloader fell back to the old slot: record update.rolled_back
]


@dataclass(frozen=True)
class BootAction:
    kind: BootKind
    reason: str = ""
    # Mark the booted slot good: U-Boot takes one attempt off a slot at every boot,
    # committed or not, so a system that came up must say so each time, or after a
    # few boots it would fall back to the other slot (or, with both at zero, reset
    # both counters and try the failed slot again).
    mark_good: bool = False


def after_boot(
    last: LastUpdate | None,
    status: UpdaterStatus,
    health: Health | None = None,
    *,
    install_running: bool = False,
) -> BootAction:
    """What this boot must do about the last update, from the log, the slots and health.

    The boot-time check (after the kiosk's READY=1 and the sync agent's start) calls it
    with ``health``; without, a trial boot answers ``trial`` (for ``update status``).
    An install is pending from ``update.installed`` until ``update.committed`` or
    ``update.rolled_back``. The slots tell a pending install's state: the bootloader's
    first choice is the new slot until it commits, runs out of attempts or is marked bad.
    """
    came_up = health is not None and health.kiosk_ready
    if last is None or last.type in (ev.UPDATE_COMMITTED, ev.UPDATE_ROLLED_BACK, ev.UPDATE_FAILED):
        return BootAction("none", mark_good=came_up)
    p = last.payload
    target, version = p.get("to_slot"), p.get("to_version")
    if last.type == ev.UPDATE_STARTED:
        if install_running:
            return BootAction("in_progress")
        return BootAction(
            "interrupted",
            f"the install of {version} into slot {target} was cut off (power or a crash); "
            "the partial install is discarded and the running system is untouched",
            mark_good=came_up,
        )
    if status.booted.bootname != target:
        if status.primary == target:
            return BootAction("awaiting_reboot")
        return BootAction(
            "rolled_back",
            f"{version} in slot {target} did not confirm it was healthy within its boot "
            f"attempts; the bootloader started slot {status.booted.bootname} "
            f"({running_version(status)}) again",
            mark_good=came_up,
        )
    if status.booted.version not in (None, version):
        return BootAction(
            "rolled_back",
            f"slot {target} holds {status.booted.version}, not {version}: the install was replaced",
            mark_good=came_up,
        )
    if health is None:
        return BootAction("trial")
    problems = health_problems(health)
    if problems:
        return BootAction("reject", f"{version} was not healthy: {'; '.join(problems)}")
    return BootAction("commit", mark_good=True)


# -- what the log says runs -----------------------------------------------------------------
LoggedKind = Literal[
    "none",  # no update recorded: the system flashed onto the card
    "installing",  # update.started in this boot: the updater is writing the other slot
    "interrupted",  # update.started in an earlier boot: cut off (update.failed follows)
    "awaiting_reboot",  # update.installed in this boot: the new slot starts at the restart
    "trial",  # update.installed in an earlier boot: running the new slot, not committed
    "committed",
    "rolled_back",
    "failed",
]


@dataclass(frozen=True)
class LoggedState:
    """What the newest ``update.*`` event says the till runs, without asking the updater.

    For those who only read the log (the sync agent's health message): the events carry
    the versions and slots, and the boot that recorded the event tells an install that
    waits for its restart from one that restarted into its trial. ``running``/``slot``
    are None when the log cannot tell (no update recorded since the card was flashed).
    """

    kind: LoggedKind
    running: str | None
    slot: str | None
    version: str | None = None  # the last update's version (its to_version)
    reason: str | None = None  # of a roll back or a failure, as recorded


def logged_state(last: LastUpdate | None, recorded_this_boot: bool) -> LoggedState:
    """The update state of :class:`LastUpdate` ``last``; ``recorded_this_boot``: its
    event's boot id is the running boot's."""
    if last is None:
        return LoggedState("none", None, None)
    p = last.payload

    def text(key: str) -> str | None:
        value = p.get(key)
        return value if isinstance(value, str) and value else None

    old, new = (text("from_version"), text("from_slot")), (text("to_version"), text("to_slot"))
    version = new[0]
    if last.type == ev.UPDATE_STARTED:
        kind: LoggedKind = "installing" if recorded_this_boot else "interrupted"
        return LoggedState(kind, *old, version)
    if last.type == ev.UPDATE_INSTALLED:
        if recorded_this_boot:
            return LoggedState("awaiting_reboot", *old, version)
        return LoggedState("trial", *new, version)
    if last.type == ev.UPDATE_COMMITTED:
        return LoggedState("committed", *new, version)
    kind = "rolled_back" if last.type == ev.UPDATE_ROLLED_BACK else "failed"
    return LoggedState(kind, *old, version, text("reason"))
