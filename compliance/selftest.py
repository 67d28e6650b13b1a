"""The preflight self-test: every check a field engineer runs before the stall goes live.

Each check returns a :class:`CheckResult` (name, pass/warn/fail, the measured
value, a plain-language fix). Which failures stop the kiosk is configured per
deployment in ``tillbox.toml``::

    [selftest]
    fatal = ["log", "device_key", "disk", "clock", "power", "earth", "permits"]
    min_free_mb = 200
    permit_warn_days = 14

A check never raises: a missing device, a corrupt log or an unreadable key is a
``fail`` with the reason, so a self-test with every device missing still gives
one clear verdict per check. The result goes into the log as ``selftest.recorded``
(so an inspector sees the history) whenever the log can be written.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance import events, keys, queries, sync_state
from appliance.datadir import Config, DataDir
from appliance.errors import TillError
from appliance.formats.brokerurl import BrokerURL
from appliance.log import EventLog
from compliance import enroll
from compliance.probes import Probes, Reading
from compliance.settings import DEFAULT_FATAL, SECTIONS

SELFTEST_RECORDED = events.SELFTEST_RECORDED
CHECK_NAMES = (
    "printer",
    "engraver",
    "camera",
    "power",
    "earth",
    "disk",
    "log",
    "clock",
    "device_key",
    "permits",
    "enrollment",
    "secrets",
    "broker",
    "sync",
)
# The till works offline: the broker and the sync agent only ever warn.
NEVER_FATAL = frozenset({"broker", "sync"})
DEFAULT_MIN_FREE_MB = SECTIONS["selftest"].settings["min_free_mb"].default
DEFAULT_PERMIT_WARN_DAYS = SECTIONS["selftest"].settings["permit_warn_days"].default


@dataclass
class CheckResult:
    name: str
    result: str  # pass | warn | fail
    value: str  # what was measured, in words and numbers
    fix: str = ""  # what a person does about it; empty on pass
    fatal: bool = False  # set by the runner from the configuration

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pass(name: str, value: str) -> CheckResult:
    return CheckResult(name, "pass", value)


def _warn(name: str, value: str, fix: str) -> CheckResult:
    return CheckResult(name, "warn", value, fix)


def _fail(name: str, value: str, fix: str) -> CheckResult:
    return CheckResult(name, "fail", value, fix)


@dataclass
class Context:
    data_dir: DataDir
    config: Config
    probes: Probes
    today: date
    now_ms: int
    time_synced: Callable[[], bool | None]
    full_log: bool = False
    log: EventLog | None = None
    log_error: str = ""
    log_point: tuple[int, str] | None = None  # (seq, hash) the log check verified up to


# -- device checks -------------------------------------------------------------------------
def _not_fitted(name: str, reading: Reading) -> CheckResult:
    return _warn(
        name,
        reading.message or "not configured",
        f"if this stall has a {name}, set its URL in tillbox.toml [hardware]",
    )


def check_printer(ctx: Context) -> CheckResult:
    r = ctx.probes.read("printer")
    if not r.configured:
        return _not_fitted("printer", r)
    paper = r.detail.get("paper", "unknown")
    if not r.ok:
        return _fail(
            "printer",
            r.message,
            "connect and switch on the receipt printer, close "
            "its cover and load paper; then run the self-test again",
        )
    if r.detail.get("online") is False or paper == "out":
        return _fail(
            "printer",
            f"online={r.detail.get('online')}, paper={paper}",
            "load a paper roll and close the cover",
        )
    if paper == "near_end":
        return _warn("printer", "online, paper near end", "have a new paper roll ready")
    if paper != "ok":
        return _warn(
            "printer",
            f"online, paper {paper} ({r.message})",
            "check there is paper by printing a test receipt (`tillbox hw test`)",
        )
    return _pass("printer", "online, paper present")


def check_engraver(ctx: Context) -> CheckResult:
    r = ctx.probes.read("engraver")
    if not r.configured:
        return _not_fitted("engraver", r)
    if not r.ok and "state" not in r.detail:
        return _fail(
            "engraver",
            r.message or "no handshake",
            "switch the engraver on, check the USB cable, then run the self-test again",
        )
    d = r.detail
    version = d.get("version") or "handshake ok"
    state = str(d.get("state", "unknown"))
    if d.get("alarm") not in (None, 0, "", False) or state.lower().startswith("alarm"):
        return _fail(
            "engraver",
            f"{version}, state {state}, alarm {d.get('alarm')}",
            "clear the alarm: check the end stops and lid, then home the engraver "
            "($H) or unlock it ($X)",
        )
    if d.get("laser_mode") is False:
        return _fail(
            "engraver",
            f"{version}, state {state}, laser mode off",
            "turn laser mode on ($32=1) so the laser stops at every move",
        )
    if state.lower() != "idle":
        return _fail(
            "engraver",
            f"{version}, state {state}",
            "wait for the job to finish or reset the engraver until it reports Idle",
        )
    if d.get("laser_mode") is None:
        return _warn(
            "engraver",
            f"{version}, idle, laser mode not reported",
            "check $32=1 on the engraver's settings",
        )
    if not r.ok:
        return _fail("engraver", r.message, "fix what the engraver reports, then run again")
    return _pass("engraver", f"{version}, idle, laser mode on, no alarm")


def check_camera(ctx: Context) -> CheckResult:
    from compliance.photos import check_image

    r = ctx.probes.read("camera")
    if not r.configured:
        return _not_fitted("camera", r)
    frame, why = ctx.probes.capture()
    if frame is None:
        return _fail(
            "camera",
            why or r.message,
            "check the camera cable and that no other "
            "program uses the camera, then run the self-test again",
        )
    try:
        width, height = check_image(frame, "the camera frame")
    except TillError as exc:
        return _fail(
            "camera",
            str(exc).split(";")[0],
            "the camera returns broken frames; reseat its ribbon cable or replace the camera",
        )
    return _pass("camera", f"captured a {width}x{height} frame ({len(frame)} bytes)")


def _gpio_input(ctx: Context, name: str, key: str, what: str, fix_low: str) -> CheckResult:
    r = ctx.probes.read("gpio")
    if not r.configured:
        return _not_fitted(name, r)
    value = r.detail.get(key)
    if value is None:
        if not r.ok:
            return _fail(name, r.message, "check the GPIO HAT and its wiring")
        return _warn(
            name,
            f"{what} input not reported",
            f"wire the {what} sense input and name its pin in tillbox.toml [hardware]",
        )
    if value is True:
        return _pass(name, f"{what} input high (good)")
    return _fail(name, f"{what} input low", fix_low)


def check_power(ctx: Context) -> CheckResult:
    return _gpio_input(
        ctx,
        "power",
        "power_good",
        "mains power-good",
        "mains power is not good: check the supply and the RCD, then run again",
    )


def check_earth(ctx: Context) -> CheckResult:
    return _gpio_input(
        ctx,
        "earth",
        "earth_ok",
        "earth/grounding sense",
        "the stall is not earthed: have the electrical set-up checked before "
        "trading (do not use the engraver)",
    )


# -- storage, log, clock, key --------------------------------------------------------------
def check_disk(ctx: Context) -> CheckResult:
    minimum = int(ctx.config.section("selftest").get("min_free_mb", DEFAULT_MIN_FREE_MB))
    try:
        free_mb = shutil.disk_usage(ctx.data_dir.root).free // (1024 * 1024)
    except OSError as exc:
        return _fail("disk", f"cannot measure ({exc.strerror})", "check the data partition")
    value = f"{free_mb} MB free (minimum {minimum} MB)"
    if free_mb < minimum:
        return _fail(
            "disk",
            value,
            "free space: export and delete old inspection bundles or photos, or use a larger card",
        )
    if free_mb < 2 * minimum:
        return _warn("disk", value, "space is getting low; plan to free some")
    return _pass("disk", value)


def last_verified_point(log: EventLog) -> tuple[int, str]:
    """(seq, hash) up to which an earlier self-test verified the chain; (0, '') if none."""
    return queries.last_verified_point(log, SELFTEST_RECORDED)


def check_log(ctx: Context) -> CheckResult:
    if ctx.log is None:
        return _fail(
            "log",
            ctx.log_error,
            "the log cannot be opened; keep this card for the "
            "inspector and restore the till from the region",
        )
    log = ctx.log
    since, expected_hash = (0, "") if ctx.full_log else last_verified_point(log)
    if since:
        if queries.event_hash(log, since) != expected_hash:
            return _fail(
                "log",
                f"event {since} differs from when it was last verified",
                "the log was altered: keep this card for the inspector, restore "
                "the till from the region",
            )
    report = log.verify(since)
    if not report.ok:
        return _fail(
            "log",
            f"broken at seq {report.first_bad_seq}: {report.reason}",
            "keep this card for the inspector and restore the till from the region",
        )
    ctx.log_point = (report.last_seq, report.last_hash)
    scope = "whole log" if since == 0 else f"tail since seq {since}"
    return _pass(
        "log",
        f"quick_check ok, {report.checked} events chained ({scope}), last seq {report.last_seq}",
    )


def time_synced_systemd() -> bool | None:
    """True when systemd-timesyncd/chrony says the clock is synchronised; None if unknown."""
    if Path("/run/systemd/timesync/synchronized").exists():
        return True
    try:
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip().lower()
    return True if text == "yes" else False if text == "no" else None


def check_clock(ctx: Context) -> CheckResult:
    now = datetime.fromtimestamp(ctx.now_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    if ctx.log is not None:
        last_ms = queries.last_wall_ms(ctx.log)
        if ctx.now_ms < last_ms:
            behind = (last_ms - ctx.now_ms) // 1000
            return _fail(
                "clock",
                f"{now} is {behind} s before the last event in the log",
                "set the correct time (connect to the network or set it by hand) "
                "before selling; receipts would carry a wrong time",
            )
    synced = ctx.time_synced()
    if not synced:
        return _warn(
            "clock",
            f"{now}, no time source confirms it",
            "connect to the network once (NTP) or fit an RTC; check the time is "
            "right before selling",
        )
    return _pass("clock", f"{now}, synchronised")


def check_device_key(ctx: Context) -> CheckResult:
    path = ctx.data_dir.private_key_path
    if not path.exists():
        return _fail(
            "device_key",
            f"{path} is missing",
            "restore the key from the device's backup or re-enroll the device (`tillbox enroll`)",
        )
    try:
        problem = keys.unsafe_mode(path)
        if problem:
            return _fail("device_key", problem.split(";")[0], problem.split("; ")[-1])
        folder_mode = stat.S_IMODE(path.parent.stat().st_mode)
        if folder_mode & 0o022:
            # others could replace the key file (and with it every signature)
            return _fail(
                "device_key",
                f"{path.parent} has mode {folder_mode:04o}: others can replace the key",
                f"run `chmod 700 {path.parent}`",
            )
        signing = keys.load_signing_key(path)
    except (TillError, OSError) as exc:
        return _fail("device_key", str(exc).split(";")[0], "restore the key from the backup")
    public = signing.verify_key.encode().hex()
    try:
        stated = ctx.data_dir.public_key_path.read_text().strip()
    except OSError:
        stated = ""
    if stated != public:
        return _fail(
            "device_key",
            "device.pub does not match the private key",
            f"write the right public key: echo {public} > {ctx.data_dir.public_key_path}",
        )
    if ctx.log is not None:
        genesis = queries.genesis_payload(ctx.log)
        if genesis and genesis.get("public_key") not in (None, public):
            return _fail(
                "device_key",
                "the key differs from the one the log was created with",
                "restore this till's own key; the region will reject this one",
            )
    return _pass("device_key", f"present, mode 0600, public key {public[:16]}...")


def check_permits(ctx: Context) -> CheckResult:
    if ctx.log is None:
        return _fail("permits", "cannot read the log", "fix the log first")
    enrollment = enroll.latest_enrollment(ctx.log)
    if enrollment is None:
        return _fail(
            "permits",
            "no enrollment recorded",
            "enroll the till with its permits (`tillbox enroll` or the Onboarding screen)",
        )
    manifest = enrollment["manifest"]
    permits = manifest.get("permits", [])
    if not permits:
        return _fail(
            "permits",
            "the enrollment holds no permit",
            "re-enroll with the permit scan (`tillbox enroll --permit ...`)",
        )
    warn_days = int(
        ctx.config.section("selftest").get("permit_warn_days", DEFAULT_PERMIT_WARN_DAYS)
    )
    folder = enroll.enrollment_folder(ctx.data_dir, manifest["sequence"])
    soonest: tuple[date, str] | None = None
    for permit in permits:
        label = f"{permit.get('kind', 'permit')} {permit.get('number', '')}".strip()
        path = folder / permit["file"]
        if not path.is_file():
            return _fail(
                "permits",
                f"{label}: scan {permit['file']} is missing",
                "restore the data folder or re-enroll with the permit scan",
            )
        if hashlib.sha256(path.read_bytes()).hexdigest() != permit["sha256"]:
            return _fail(
                "permits",
                f"{label}: scan {permit['file']} changed since it was enrolled",
                "restore the data folder from a backup or re-enroll with the permit scan",
            )
        expires = date.fromisoformat(permit["expires"])
        if expires < ctx.today:
            return _fail(
                "permits",
                f"{label} expired on {expires}",
                "renew the permit and re-enroll with the new scan before trading",
            )
        if soonest is None or expires < soonest[0]:
            soonest = (expires, label)
    assert soonest is not None
    value = f"{len(permits)} permit(s); {soonest[1]} valid until {soonest[0]}"
    if soonest[0] < ctx.today + timedelta(days=warn_days):
        return _warn("permits", value, "renew the permit soon")
    return _pass("permits", value)


def check_enrollment(ctx: Context) -> CheckResult:
    """The region's review of the latest enrollment (recorded by the sync agent).

    Approved passes; rejected fails (loud: the region refuses this stall's enrollment;
    add "enrollment" to [selftest] fatal to stop sales on it); not reviewed yet is a
    warning (a till may trade before the region's reviewer has looked).
    """
    from appliance.formats import review as review_format
    from appliance.formats.wire import WireError

    if ctx.log is None:
        return _warn("enrollment", "cannot read the log", "fix the log first")
    enrollment = enroll.latest_enrollment(ctx.log)
    if enrollment is None:
        return _warn(
            "enrollment",
            "not enrolled: nothing for the region to review",
            "enroll the till (`tillbox enroll`), then export it for the region "
            "(`tillbox enrollment export --out FILE`)",
        )
    number = enrollment["manifest"].get("sequence", "?")
    recorded = queries.latest_payload(ctx.log, events.ENROLLMENT_REVIEWED)
    if recorded is None or recorded.get("manifest_sha256") != enrollment.get("manifest_sha256"):
        return _warn(
            "enrollment",
            f"enrollment {number} not reviewed by the region yet",
            "give the region the enrollment export (`tillbox enrollment export --out FILE`); "
            "its review arrives with the next sync",
        )
    key_text = str(ctx.config.section("sync").get("region_public_key") or "")
    if not key_text:
        return _fail(
            "enrollment",
            f"the review of enrollment {number} cannot be checked: [sync] region_public_key "
            "is not set",
            "set [sync] region_public_key in tillbox.toml to the region's public key",
        )
    try:
        review = review_format.from_event(recorded, keys.load_verify_key(key_text))
    except (TillError, WireError) as exc:
        return _fail(
            "enrollment",
            f"the recorded review of enrollment {number} does not verify with [sync] "
            f"region_public_key ({str(exc).split(';')[0]})",
            "set [sync] region_public_key to the region's key; if it is right, the log "
            "holds a forged review: keep this card for the inspector",
        )
    day = datetime.fromtimestamp(review.decided_wall_ms / 1000, UTC).date().isoformat()
    if review.approved:
        return _pass(
            "enrollment", f"enrollment approved by the region on {day} ({review.reviewer})"
        )
    return _fail(
        "enrollment",
        f"enrollment rejected by the region on {day} ({review.reviewer}): {review.reason}",
        "fix what the region names, re-enroll (`tillbox enroll`) and give the region the "
        "new enrollment export",
    )


def check_broker(ctx: Context) -> CheckResult:
    broker = str(ctx.config.section("sync").get("broker", "") or "")
    if not broker:
        return _warn(
            "broker",
            "no broker configured",
            "set [sync] broker to sync with the region (the till works offline meanwhile)",
        )
    try:  # the one parser the sync agent uses too: what passes here, the agent accepts
        url = BrokerURL.parse(broker)
    except TillError as exc:
        return _warn("broker", "bad broker address", str(exc))
    host, port = url.host, url.port
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except OSError as exc:
        return _warn(
            "broker",
            f"{host}:{port} unreachable ({exc.strerror or exc})",
            "the till keeps selling offline; check the network/SIM when convenient",
        )
    ms = int((time.monotonic() - started) * 1000)
    return _pass("broker", f"{host}:{port} reachable in {ms} ms")


def check_secrets(ctx: Context) -> CheckResult:
    from compliance.secrets import exposed_secrets, secret_files

    files = secret_files(ctx.data_dir, ctx.config)
    exposed = exposed_secrets(files)
    if exposed:
        path, mode = exposed[0]
        more = f" (and {len(exposed) - 1} more)" if len(exposed) > 1 else ""
        return _fail(
            "secrets",
            f"{path} has mode {mode:04o}: other users can read it{more}",
            f"run `chmod 600 {path}` (640 where the tillbox group needs it)",
        )
    if ctx.config.section("sync")["password"]:
        return _warn(
            "secrets",
            "tillbox.toml holds the broker password inline",
            "put it in a file (chmod 600) and set [sync] password_file to its path",
        )
    return _pass("secrets", f"{len(files)} secret file(s), none readable by others")


def check_sync(ctx: Context) -> CheckResult:
    """What waits to sync (from the log) and whether the sync agent is alive."""
    if ctx.log is None:
        return _warn("sync", "cannot read the log", "fix the log first")
    view = sync_state.view(
        ctx.data_dir.sync_dir,
        ctx.log.last()[0],
        interval_s=sync_state.interval_s(ctx.config.section("sync")),
        now_ms=ctx.now_ms,
    )
    value = f"{view.waiting} events waiting, acked up to seq {view.acked_seq} of {view.last_seq}"
    if not view.agent_running:
        return _warn(
            "sync",
            f"{value}; {view.agent_note(ctx.now_ms)}",
            "start the sync agent (`systemctl start tillbox-sync`, or `tillbox sync`) so "
            "the sales reach the region",
        )
    return _pass("sync", f"{value}; agent running")


CHECKS: dict[str, Callable[[Context], CheckResult]] = {
    "printer": check_printer,
    "engraver": check_engraver,
    "camera": check_camera,
    "power": check_power,
    "earth": check_earth,
    "disk": check_disk,
    "log": check_log,
    "clock": check_clock,
    "device_key": check_device_key,
    "permits": check_permits,
    "enrollment": check_enrollment,
    "secrets": check_secrets,
    "broker": check_broker,
    "sync": check_sync,
}


def fatal_checks(config: Config) -> list[str]:
    fatal = config.section("selftest").get("fatal", DEFAULT_FATAL)
    if not isinstance(fatal, list) or not all(isinstance(n, str) for n in fatal):
        raise TillError(
            '[selftest] fatal in tillbox.toml must be a list of check names, e.g. ["log", "disk"]'
        )
    unknown = sorted(set(fatal) - set(CHECK_NAMES))
    if unknown:
        raise TillError(
            f"[selftest] fatal names unknown check(s) {', '.join(unknown)}; use "
            f"some of {', '.join(CHECK_NAMES)}"
        )
    return [n for n in fatal if n not in NEVER_FATAL]


@dataclass
class SelftestReport:
    checks: list[CheckResult]
    ok: bool
    log_point: tuple[int, str] | None
    recorded_seq: int | None = None
    record_problem: str = ""

    @property
    def verdict(self) -> str:
        return "pass" if self.ok else "fail"

    def payload(self, trigger: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "trigger": trigger,
            "checks": [c.to_json() for c in self.checks],
        }
        if self.log_point:
            out["log_verified"] = {"seq": self.log_point[0], "hash": self.log_point[1]}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "checks": [c.to_json() for c in self.checks],
            "recorded_seq": self.recorded_seq,
            "record_problem": self.record_problem,
        }

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{'check':<{width}}  result  measured / fix"]
        for c in self.checks:
            mark = c.result.upper() + ("!" if c.fatal and c.result == "fail" else "")
            lines.append(f"{c.name:<{width}}  {mark:<6}  {c.value}")
            if c.fix:
                lines.append(f"{'':<{width}}          fix: {c.fix}")
        verdict = (
            "PASS: ready to trade"
            if self.ok
            else ("FAIL: fix the checks marked FAIL! before trading")
        )
        lines.append(verdict)
        if self.recorded_seq:
            lines.append(f"recorded in the log at seq {self.recorded_seq}")
        elif self.record_problem:
            lines.append(f"not recorded in the log: {self.record_problem}")
        return "\n".join(lines)


def run_selftest(
    data_dir: DataDir,
    probes: Probes,
    *,
    only: list[str] | None = None,
    full_log: bool = False,
    today: date | None = None,
    now_ms: int | None = None,
    time_synced: Callable[[], bool | None] = time_synced_systemd,
    record: bool = True,
    trigger: str = "cli",
) -> SelftestReport:
    """Run the checks (all, or ``only``), then record the result in the log."""
    config = data_dir.load_config()
    fatal = set(fatal_checks(config))
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    ctx = Context(data_dir, config, probes, today or date.today(), now_ms, time_synced, full_log)
    try:
        ctx.log = EventLog.open(data_dir.log_path, readonly=True)
    except TillError as exc:
        ctx.log_error = str(exc)
    results = []
    try:
        for name in only or CHECK_NAMES:
            try:
                result = CHECKS[name](ctx)
            except Exception as exc:  # noqa: BLE001 - a check that crashes is a clear fail
                result = _fail(
                    name,
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "report this with `TILLBOX_DEBUG=1 tillbox selftest`",
                )
            result.fatal = name in fatal
            results.append(result)
    finally:
        if ctx.log is not None:
            ctx.log.close()
    ok = not any(c.fatal and c.result == "fail" for c in results)
    report = SelftestReport(results, ok, ctx.log_point)
    if record:
        _record(data_dir, report, trigger)
    return report


def _record(data_dir: DataDir, report: SelftestReport, trigger: str) -> None:
    from appliance.till import Till

    if report.log_point is None and any(
        c.name == "log" and c.result == "fail" for c in report.checks
    ):
        report.record_problem = "the log failed its check; nothing is appended to a broken log"
        return
    try:
        with Till.open(data_dir) as till:
            report.recorded_seq = till.record_selftest(report.payload(trigger)).seq
    except TillError as exc:
        report.record_problem = str(exc)
