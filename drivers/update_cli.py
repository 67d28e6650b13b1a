"""``tillbox update ...``: the till's A/B system updates, for a technician.

``status`` shows the slots, the last update and the region's offer; ``install`` takes a
bundle from a file, a USB stick's folder, or the https URL of the region's release
notice in force (downloaded first, bounded and hashed by the notice), checks it
(signature, hardware, version), installs it into the other slot and says when it
starts; ``mark-good`` commits the running system by hand; ``reboot`` restarts into an
installed update now; ``apply`` is root's pass every minute (tillbox-update-apply.timer)
that installs the region's downloaded offer between shifts and restarts into an
installed update at shift close; ``boot-check`` is the boot-time commit-or-roll-back check the
image runs (tillbox-update-check.service).

Exit status: 0 done; 1 refused (an open sale, other hardware, a downgrade not forced,
no bundle on the stick, the updater missing, a URL that is not the one the region's
release notice names, a download cut too often); 2 usage (a URL that is not https://);
3 storage (the data partition is full, the card failed the install);
4 a bundle that is not trusted or not whole (a download that is not the file the
notice names, a region TLS certificate that does not verify, a bad signature, an unknown signer, a
truncated file). Nothing is installed, and the running slot is untouched, on any error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cliutil import OneLineParser, emit, open_till, till_command
from appliance.errors import TillError

if TYPE_CHECKING:
    from appliance.services.updates import Till  # the core's, handed on to its services
    from appliance.updates import Updater

_URL_PREFIXES = ("http://", "https://", "ftp://")


def _updater(till: Till) -> Updater:
    from drivers.updates import open_updater

    return open_updater(till.config, till.data_dir)


def _pending_text(kind: str, last: Any) -> str:
    p = last.payload if last else {}
    to = f"{p.get('to_version')} in slot {p.get('to_slot')}"
    return {
        "none": "no update pending",
        "in_progress": f"installing {to} now",
        "interrupted": f"the install of {to} was cut off; it is discarded at the next check",
        "awaiting_reboot": f"{to} is installed; it starts at shift close or with "
        "`tillbox update reboot`",
        "trial": f"running {to} on trial: it commits once the self-test, the kiosk and the "
        "sync agent are up (or `tillbox update mark-good`)",
        "rolled_back": f"{to} did not start healthy; the till went back to the previous system",
    }.get(kind, kind)


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.services import updates as service
    from appliance.updates import after_boot, running_version

    with open_till(args) as till:
        updater = _updater(till)
        status = updater.status()
        last = service.last_update(till)
        action = after_boot(last, status, install_running=service.install_running(till.data_dir))
        out = {
            "backend": updater.url,
            "running_version": running_version(status),
            "slots": status.to_json(),
            "pending": action.kind,
            "last_update": None
            if last is None
            else {"seq": last.seq, "type": last.type, **last.payload},
        }
        from appliance.services.updates import offer_state

        out["offer"], offer_line = offer_state(till)
        booted, other = status.booted, status.other
        text = "\n".join(
            [
                f"running {out['running_version']} from slot {booted.bootname} "
                f"({'bootable' if booted.good else 'not marked good'}); hardware "
                f"{status.compatible}",
                f"slot {other.bootname}: {other.version or 'empty'}, "
                f"{'bootable' if other.good else 'not bootable'}"
                f"{', starts next' if status.primary == other.bootname else ''}",
                _pending_text(action.kind, last),
                *([offer_line] if offer_line else []),
            ]
        )
        emit(args, out, text)
    return 0


def _download(till: Till, url: str) -> Path:
    """The region's offered bundle at ``url``, downloaded now (its notice bounds it)."""
    from appliance.services.updates import activity
    from appliance.updates import TECHNICIAN, check_install_time
    from drivers import update_fetch

    check_install_time(activity(till), TECHNICIAN)  # no download to wait for, in a sale
    notice = update_fetch.offered_for(till, url)
    bundle = update_fetch.download(till, notice)
    if bundle is None:
        raise TillError("a sale opened on the kiosk; the download waits: run it again after")
    return bundle


def cmd_install(args: argparse.Namespace) -> int:
    from appliance.services import updates as service

    if args.source.startswith(_URL_PREFIXES) and not args.source.startswith("https://"):
        sys.stderr.write(
            "tillbox: error: a bundle is only downloaded over https:// (the URL of the "
            "region's release notice); copy the bundle to a USB stick and pass its path\n"
        )
        return 2
    if any(ord(c) < 32 or ord(c) == 127 for c in args.source):
        raise TillError("the bundle's path holds control characters; give the path again")
    with open_till(args) as till:
        updater = _updater(till)
        if args.source.startswith("https://"):
            bundle = _download(till, args.source)
        else:
            bundle = service.choose_bundle(Path(args.source), updater)

        def progress(percent: int, what: str) -> None:
            if not args.json:
                sys.stderr.write(f"{percent:3d}% {what}\n")

        result = service.install(
            till, updater, bundle, force=args.force_downgrade, progress=progress
        )
        plan = result.plan
        note = " (a forced downgrade, logged)" if plan.forced else ""
        emit(
            args,
            plan.payload(seq=result.seq, bundle=str(bundle)),
            f"installed {plan.to_version} into slot {plan.to_slot}{note}; the till runs "
            f"{plan.from_version} until it restarts: at shift close, or now with "
            "`tillbox update reboot`",
        )
    return 0


def cmd_mark_good(args: argparse.Namespace) -> int:
    from appliance.services import updates as service

    with open_till(args) as till:
        action = service.mark_good(till, _updater(till))
        committed = action.kind == "commit"
        emit(
            args,
            {"committed": committed, "pending": action.kind},
            "the running system is marked good"
            + (" and the update is committed" if committed else ""),
        )
    return 0


def cmd_reboot(args: argparse.Namespace) -> int:
    from appliance.services import updates as service

    with open_till(args) as till:
        service.restart_now(
            till,
            lambda: _updater(till),
            lambda: emit(args, {"rebooting": True}, "restarting the till"),
        )
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """One pass of root's tillbox-update-apply.service (its timer, every minute, and
    tillbox-update-request.path when the kiosk hands over an install or a restart): the
    kiosk's request, then the region's downloaded offer between shifts, then a restart
    into an installed update while no shift is open. Prints what it did, one line each;
    nothing when idle."""
    from appliance.services import updates as service
    from drivers import update_fetch
    from drivers.update_requests import serve_requests

    with open_till(args) as till:
        # first the kiosk's: its technician waits at the screen, holding the install lock
        did = {"request": serve_requests(till)}
        if did["request"] and not args.json:
            sys.stdout.write(f"update apply: {did['request']}\n")
            sys.stdout.flush()
        did["install"] = update_fetch.install_offered(till, _updater(till))
        if did["install"] == "installed" and not args.json:
            sys.stdout.write(f"update apply: installed the region's offer ({_last_to(till)})\n")
            sys.stdout.flush()  # before the restart below takes the console away
        did["restart"] = service.restart_for_update(till, lambda: _updater(till))
        if args.json:
            emit(args, did, "")
        elif did["restart"]:
            sys.stdout.write(f"update apply: {did['restart']}\n")
    return 0


def _last_to(till: Till) -> str:
    from appliance.services.updates import last_update

    last = last_update(till)
    return str(last.payload.get("to_version")) if last else "?"


# -- the boot-time check -----------------------------------------------------------------
KIOSK_UNIT = "tillbox-ui.service"
SYNC_UNIT = "tillbox-sync.service"
HEADLESS_ARG = "tillbox.headless=1"  # kernel command line: a till without a display
POLL_S = 2.0


def unit_state(unit: str) -> dict[str, str]:
    """ActiveState, SubState and NRestarts of ``unit`` (empty values when systemd cannot say)."""
    import subprocess

    keys = ("ActiveState", "SubState", "NRestarts")
    try:
        done = subprocess.run(
            ["systemctl", "show", *(f"--property={k}" for k in keys), unit],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        out = done.stdout[:4096]
    except (OSError, subprocess.SubprocessError):
        out = ""
    state = dict.fromkeys(keys, "")
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key in state:
            state[key] = value
    return state


def headless(cmdline: Path = Path("/proc/cmdline")) -> bool:
    """The kernel command line says this till has no display (the QEMU test): the kiosk
    cannot draw, so its READY=1 is not asked for (and the commit says so)."""
    try:
        return HEADLESS_ARG in cmdline.read_text()[:4096].split()
    except OSError:
        return False


def gather_health(
    till: Till, wait_s: float, *, kiosk_required: bool, state: Any = None
) -> tuple[Any, dict[str, Any]]:
    """This boot's Health, waiting up to ``wait_s`` for the kiosk's READY=1 and the sync
    agent's start: (Health, what was seen, for the log)."""
    import time

    from appliance.services.updates import selftest_this_boot
    from appliance.services.updates import this_boot_id as current_boot_id
    from appliance.updates import Health

    state = state or unit_state
    deadline = time.monotonic() + wait_s
    while True:
        kiosk, sync = state(KIOSK_UNIT), state(SYNC_UNIT)
        kiosk_ready = kiosk["ActiveState"] == "active" or not kiosk_required
        # Started: running (READY=1 needs the broker, which may be hours away) without
        # having crashed this boot.
        sync_started = sync["ActiveState"] in ("active", "activating") and sync["NRestarts"] in (
            "",
            "0",
        )
        # a unit that crashed this boot will not come good: no need to wait it out
        crashed = (
            sync["ActiveState"] == "failed"
            or sync["NRestarts"] not in ("", "0")
            or (kiosk_required and kiosk["ActiveState"] == "failed")
        )
        if (kiosk_ready and sync_started) or crashed or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    selftest, failed = selftest_this_boot(till, current_boot_id())
    seen = {
        "kiosk": kiosk["ActiveState"] if kiosk_required else "not checked (headless)",
        "sync": sync["ActiveState"],
        "selftest": selftest,
    }
    return Health(selftest, kiosk_ready, sync_started, failed), seen


def cmd_boot_check(args: argparse.Namespace) -> int:
    from appliance.services import updates as service
    from appliance.updates import health_problems

    with open_till(args) as till:
        health, seen = gather_health(till, args.wait, kiosk_required=not headless())
        action = service.settle_boot(till, _updater(till), health, reboot=not args.no_reboot)
        problems = "; ".join(health_problems(health)) or "healthy"
        emit(
            args,
            {"action": action.kind, "reason": action.reason, "seen": seen},
            f"boot check: {action.kind} ({problems}; kiosk {seen['kiosk']}, sync agent "
            f"{seen['sync']}, self-test {seen['selftest']})",
        )
    return 0


def restart_at_close(args: argparse.Namespace, till: Till, event: Any) -> dict[str, Any]:
    """``tillbox shift close`` hook (after the Z report's): restart into an installed
    update now that the shift is closed. Never raises: the close is durable already."""
    from appliance.services.updates import restart_for_update

    try:
        message = restart_for_update(till, lambda: _updater(till))
    except Exception as exc:  # noqa: BLE001 - a broken updater must not fail the close
        message = f"the installed update did not start ({exc}); `tillbox update reboot`"
    return {"printed": False, "message": message}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tillbox update`` and its subcommands."""
    update = sub.add_parser("update", help="A/B system updates: status, install, commit")
    cmds = update.add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = till_command(cmds, "status", help="the slots, the running version, the last update")
    p.set_defaults(handler=cmd_status)

    p = till_command(cmds, "install", help="install a bundle (a file or a USB stick's folder)")
    p.add_argument(
        "source",
        metavar="BUNDLE_OR_PATH",
        help="a .raucb file, a folder (USB stick) holding one, or the https URL the "
        "region's release notice names",
    )
    p.add_argument(
        "--force-downgrade",
        action="store_true",
        help="install an older (or the same) version; logged as forced",
    )
    p.set_defaults(handler=cmd_install)

    p = till_command(cmds, "mark-good", help="mark the running system good (commit an update)")
    p.set_defaults(handler=cmd_mark_good)

    p = till_command(cmds, "reboot", help="restart now, into an installed update")
    p.set_defaults(handler=cmd_reboot)

    p = till_command(
        cmds,
        "apply",
        help="install the region's downloaded update between shifts and restart into it "
        "(run every minute by systemd, as root)",
    )
    p.set_defaults(handler=cmd_apply)

    p = till_command(
        cmds, "boot-check", help="commit or roll back the booted update (run at boot by systemd)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the kiosk's first frame and the sync agent (default 120)",
    )
    p.add_argument(
        "--no-reboot", action="store_true", help="mark a failed update bad but do not restart"
    )
    p.set_defaults(handler=cmd_boot_check)
