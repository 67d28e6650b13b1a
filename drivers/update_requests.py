"""The kiosk's install and restart, handed to root: RAUC's D-Bus API is root's only.

The kiosk runs as user ``kiosk``; ``rauc install`` (D-Bus, systemd/rauc-dbus.conf) and
``systemctl reboot`` are root's. So an unprivileged :class:`drivers.rauc.RaucUpdater`
does not call them: :func:`ask` writes a request into ``DIR/updates/`` and waits for
root's answer there; :func:`serve` (root's ``tillbox update apply``, started by
systemd/tillbox-update-request.path) runs it with the real updater. The core and the
kiosk call the updater as before and see the same errors, word for word.

Files, in the till's ``DIR/updates/`` (the core stages every bundle under it)::

    request.json    {"action": "install"|"reboot", "bundle": PATH, "id": ID}  the kiosk's
    answer.json     {"id", "state": "running"|"done"|"failed", "percent", "what",
                     "error", "exit_kind"}                                     root's
    request.taken   the request being served: renamed away first, so a second start
                    of the service (the path unit fires again) finds nothing to run

Root trusts nothing in the request but what it checks against its own sources: the
bundle must be a regular file inside ``DIR/updates/`` (RAUC verifies its signature
again), an install must be the one the till's log says was started (its newest
``update.*`` event is ``update.started`` for the bundle's version, and the install lock
is held), a restart only when an installed update awaits it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance.boundedio import KiB, TooLarge, read_stream
from appliance.errors import TillError
from appliance.fsutil import atomic_write
from appliance.services.updates import install_running, last_update, updates_dir
from appliance.updates import (
    BundleRejected,
    InstallFailed,
    Progress,
    Updater,
    UpdaterError,
    after_boot,
)

if TYPE_CHECKING:
    from appliance.datadir import DataDir
    from appliance.services.updates import Till  # the core's, handed on to its services

REQUEST = "request.json"
ANSWER = "answer.json"
TAKEN = "request.taken"
ACTIONS = ("install", "reboot")
MESSAGE_LIMIT = 4 * KiB  # a request or an answer is a few hundred bytes
# The path unit starts root's service within a second; Python and the log take a few
# more on a Pi. No first answer by then: the service is not there.
PICKUP_S = 30.0
REBOOT_S = 60.0  # `systemctl reboot` only queues the restart
POLL_S = 0.2
ERROR_CHARS = 500


class RequestRefused(UpdaterError):
    """Root's checks refused the request (not the updater's own refusal)."""


# The updater's failure as the answer's ``exit_kind``, and back into the same exception
# type on the kiosk's side (its exit status and the screen's words stay the same).
_KINDS: tuple[tuple[str, type[TillError]], ...] = (
    ("refused", RequestRefused),
    ("rejected", BundleRejected),
    ("failed", InstallFailed),
    ("hardware", UpdaterError),  # other hardware, the updater missing or stuck
)
_RAISES = dict(_KINDS)


def exit_kind(exc: TillError) -> str:
    for kind, cls in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "refused"  # a plain TillError: "bundle X does not exist", a rule


def one_line(text: str) -> str:
    return " ".join(str(text).split())[:ERROR_CHARS]


def read_message(path: Path) -> Any:
    """The JSON at ``path``: a regular file (not a symlink, not a FIFO) of at most
    MESSAGE_LIMIT bytes. OSError or ValueError when it is not one."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        try:
            data = read_stream(f, MESSAGE_LIMIT, path.name)
        except TooLarge:
            raise ValueError(f"{path.name} is larger than {MESSAGE_LIMIT} bytes") from None
    return json.loads(data.decode("utf-8"))


# -- the kiosk's side -------------------------------------------------------------------------
def ask(
    data_dir: DataDir | None,
    action: str,
    bundle: Path | None,
    progress: Progress | None,
    *,
    timeout: float,
) -> None:
    """Have root's update service run ``action`` (on ``bundle``) and wait for it: its
    progress relayed to ``progress``, its failure raised as the updater's own exception."""
    if data_dir is None:
        raise UpdaterError(
            f"the {action} needs root (RAUC's service is root's) and this updater has no "
            "till folder to hand it over in; run `tillbox update` as root"
        )
    folder = updates_dir(data_dir)
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    request_id = secrets.token_hex(16)
    request = {"action": action, "bundle": str(Path(bundle).absolute()) if bundle else ""}
    atomic_write(folder / REQUEST, json.dumps(request | {"id": request_id}).encode(), 0o640)
    started = time.monotonic()
    seen = False
    last: tuple[Any, Any] | None = None
    while True:
        answer = _answer_for(folder, request_id)
        if answer is not None:
            seen = True
            state = answer.get("state")
            if state == "failed":
                cls = _RAISES.get(str(answer.get("exit_kind")), UpdaterError)
                raise cls(one_line(answer.get("error") or f"the update service's {action} failed"))
            now = (answer.get("percent"), answer.get("what"))
            if progress and now != last and isinstance(now[0], int) and isinstance(now[1], str):
                progress(max(0, min(100, now[0])), one_line(now[1]))  # "done" has the last step
            last = now
            if state == "done":
                return
        waited = time.monotonic() - started
        if not seen and waited >= min(PICKUP_S, timeout):
            _withdraw(folder, request_id)  # a service that comes later must not run it
            raise UpdaterError(_no_answer(action, waited))
        if waited >= timeout:
            raise UpdaterError(
                f"the update service did not finish the {action} within {timeout:.0f} s; "
                "check `systemctl status tillbox-update-apply` and `tillbox update status`"
            )
        time.sleep(POLL_S)


def _answer_for(folder: Path, request_id: str) -> dict[str, Any] | None:
    try:
        answer = read_message(folder / ANSWER)
    except (OSError, ValueError):  # none yet, or root's replace under way
        return None
    return answer if isinstance(answer, dict) and answer.get("id") == request_id else None


def _withdraw(folder: Path, request_id: str) -> None:
    try:
        if read_message(folder / REQUEST).get("id") == request_id:
            (folder / REQUEST).unlink()
    except (OSError, ValueError, AttributeError):
        pass  # taken meanwhile, or another's: not ours to remove


def _no_answer(action: str, waited: float) -> str:
    # not the bundle's path: that is the core's staging copy, removed after this
    what = "`tillbox update install BUNDLE`" if action == "install" else "`tillbox update reboot`"
    return (
        f"the update service did not answer within {waited:.0f} s; run {what} as root, "
        "or restart the till"
    )


# -- root's side ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    action: str
    bundle: str
    id: str


class _Answer:
    """answer.json for one request, rewritten (atomically) as the work goes on."""

    def __init__(self, folder: Path, request_id: str) -> None:
        self.path = folder / ANSWER
        self.id = request_id
        self.group = os.lstat(folder).st_gid
        self._last: tuple[int, str] | None = None

    def write(
        self, state: str, percent: int = 0, what: str = "", error: str = "", kind: str = ""
    ) -> None:
        body = {"id": self.id, "state": state, "percent": percent, "what": what}
        body |= {"error": error, "exit_kind": kind}
        # atomic_write: the kiosk reads the old answer or the new one, never half
        atomic_write(self.path, json.dumps(body).encode(), 0o640)
        try:  # the kiosk reads it through the folder's group (lchown: never a link's target)
            os.chown(self.path, -1, self.group, follow_symlinks=False)
        except OSError:
            pass  # not root (a test), or the unit's Group= is the folder's already

    def progress(self, percent: int, what: str) -> None:
        if (percent, what) != self._last:
            self._last = (percent, what)
            self.write("running", percent, what)

    def fail(self, exc: TillError) -> None:
        self.write("failed", error=one_line(str(exc)), kind=exit_kind(exc))


def serve(till: Till, updater: Updater) -> str:
    """Run the kiosk's pending request (as root) with ``updater``: one line of what was
    done, "" when there was no request. A refusal or a failure is answered to the kiosk
    and returned as the line; an unexpected error is answered, then raised."""
    if updater.url.startswith("rauc://") and os.geteuid() != 0:
        raise UpdaterError(
            "`tillbox update apply` runs as root (RAUC's D-Bus API is root's); "
            "systemd starts it as tillbox-update-apply.service"
        )
    folder = updates_dir(till.data_dir)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return ""
    if not stat.S_ISDIR(info.st_mode):  # a link elsewhere: root writes nothing through it
        raise UpdaterError(f"{folder} is not a folder; remove it (the kiosk makes it again)")
    try:
        os.rename(folder / REQUEST, folder / TAKEN)
    except FileNotFoundError:
        return ""
    try:
        raw = read_message(folder / TAKEN)
    except (OSError, ValueError) as exc:
        return f"refused a request that is not a small JSON file ({one_line(str(exc))})"
    finally:
        (folder / TAKEN).unlink(missing_ok=True)
    request = _parse(raw)
    if request is None:
        return "refused a request without its action, bundle and id"
    if _answered(folder, request.id):
        return f"request {request.id} was served already; not run again"
    answer = _Answer(folder, request.id)
    answer.write("running", 0, f"Checking the {request.action} request")
    try:
        if request.action == "install":
            return _install(till, updater, folder, Path(request.bundle), answer)
        return _reboot(till, updater, answer)
    except TillError as exc:
        answer.fail(exc)
        return f"{request.action} {exit_kind(exc)}: {one_line(str(exc))}"
    except Exception as exc:
        answer.fail(UpdaterError(f"the update service failed ({one_line(str(exc))})"))
        raise


def serve_requests(till: Till) -> str:
    """:func:`serve` with the till's configured updater (``tillbox update apply``)."""
    from appliance.updates import open_updater

    return serve(till, open_updater(till.config, till.data_dir))


def _parse(raw: Any) -> Request | None:
    if not isinstance(raw, dict):
        return None
    action, bundle, request_id = raw.get("action"), raw.get("bundle"), raw.get("id")
    if action not in ACTIONS or not isinstance(bundle, str) or not isinstance(request_id, str):
        return None
    if not (0 < len(request_id) <= 64 and request_id.isalnum()):
        return None
    return Request(action, bundle, request_id)


def _answered(folder: Path, request_id: str) -> bool:
    try:
        answer = read_message(folder / ANSWER)
    except (OSError, ValueError):
        return False
    return isinstance(answer, dict) and answer.get("id") == request_id


def checked_bundle(folder: Path, text: str) -> Path:
    """The bundle the request names, if it is a regular file inside ``folder`` (the core
    stages every bundle there), named without a symlink; else RequestRefused."""
    path = Path(text)
    if not path.is_absolute():
        raise RequestRefused(f"the update service takes an absolute bundle path, not {text!r}")
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise RequestRefused(f"bundle {path} does not exist; install it again") from None
    if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
        raise RequestRefused(f"{path.name} is not a regular file; install from the USB stick again")
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(folder)):
        raise RequestRefused(
            f"{path.name} is not in {folder}, where the till stages its updates; install "
            "it from the technician screen or `tillbox update install`"
        )
    return real


def _install(till: Till, updater: Updater, folder: Path, bundle: Path, answer: _Answer) -> str:
    bundle = checked_bundle(folder, str(bundle))
    _started(till, None)  # before the signature check: no rauc run for an unasked install
    version = updater.inspect(bundle).version
    _started(till, version)
    updater.install(bundle, answer.progress)
    answer.write("done", 100, "Installing done")
    return f"installed {version} from {bundle.name}"


def _started(till: Till, version: str | None) -> None:
    """Refuse unless the till's log says this install was started (and is running)."""
    last = last_update(till)
    if (
        last is None
        or last.type != ev.UPDATE_STARTED
        or (version is not None and last.payload.get("to_version") != version)
        or not install_running(till.data_dir)
    ):
        what = f"of {version}" if version else "now"
        raise RequestRefused(
            f"the till's log records no install {what} (the technician screen or "
            "`tillbox update install` starts one); nothing was installed"
        )


def _reboot(till: Till, updater: Updater, answer: _Answer) -> str:
    last = last_update(till)
    pending = after_boot(last, updater.status(), install_running=install_running(till.data_dir))
    if pending.kind != "awaiting_reboot":
        raise RequestRefused(
            f"no installed update waits for a restart ({pending.kind.replace('_', ' ')}); "
            "the till was not restarted"
        )
    answer.write("running", 100, "Restarting the till")
    updater.reboot()
    answer.write("done", 100, "Restarting the till")
    return f"restarting into {last.payload.get('to_version') if last else 'the update'}"
