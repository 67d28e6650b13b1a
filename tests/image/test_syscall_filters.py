"""The units' system call filters against what the programs they run really call.

The sync agent and the kiosk run ``rauc status`` (what the till runs; is the region's
offer for it?). Their units' ``SystemCallFilter=`` lines are read in order, as systemd
does (the first line sets allow or deny; later lines add to or take from it), the
groups expanded by ``systemd-analyze syscall-filter``, and every call a traced
``rauc status`` makes on this host must be allowed: one that is not is a SIGSYS kill on
the till (found under QEMU: "rauc exited with status -31", every notice ignored)."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS_RUNNING_RAUC = ["tillbox-sync.service", "tillbox-ui.service"]

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("strace", "rauc", "systemd-analyze")),
    reason="needs strace, rauc and systemd-analyze (make test installs them)",
)


@cache
def expand(name: str) -> frozenset[str]:
    """A ``@group`` as system call names (nested groups expanded), or the name itself."""
    if not name.startswith("@"):
        return frozenset([name])
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                         text=True, check=True, timeout=60).stdout  # fmt: skip
    names: set[str] = set()
    for line in out.splitlines()[1:]:  # the first line is the group's own name
        word = line.strip()
        if word and not word.startswith("#"):
            names |= expand(word)
    return frozenset(names)


def allowed(unit: str) -> tuple[bool, set[str]]:
    """(allow-list?, the set) after every SystemCallFilter= line of ``unit``, in order."""
    lines = [ln.split("=", 1)[1].strip() for ln in (SYSTEMD / unit).read_text().splitlines()
             if ln.startswith("SystemCallFilter=")]  # fmt: skip
    assert lines, f"{unit} has no SystemCallFilter="
    allow_list = not lines[0].startswith("~")
    calls: set[str] = set()
    for value in lines:
        deny = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        if deny == (not allow_list):  # the same kind as the first: the set grows
            calls |= names
        else:
            calls -= names
    return allow_list, calls


@cache
def rauc_status_calls(tmp: str) -> frozenset[str]:
    trace = Path(tmp) / "rauc.strace"
    probe = subprocess.run(["strace", "-qq", "-o", "/dev/null", "true"], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    if probe.returncode != 0:  # a container without ptrace: say so, do not pass
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    # no RAUC service on this host: the client still starts GLib, its threads and D-Bus
    subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "rauc", "status", "--detailed",
                    "--output-format=json"], capture_output=True, timeout=120)  # fmt: skip
    calls = set()
    for line in trace.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and "(" in parts[1] and not parts[1].startswith(("+++", "---", "<")):
            calls.add(parts[1].split("(", 1)[0])
    assert {"execve", "openat", "sched_setattr"} <= calls, sorted(calls)  # the trace worked
    return frozenset(calls)


def test_the_groups_expand():
    assert "sched_setattr" in expand("@resources")
    assert "sched_setattr" in expand("@system-service")


@pytest.mark.parametrize("unit", UNITS_RUNNING_RAUC)
def test_rauc_status_runs_under_the_units_filter(unit, tmp_path_factory):
    calls = rauc_status_calls(str(tmp_path_factory.mktemp("strace")))
    allow_list, listed = allowed(unit)
    assert allow_list
    killed = sorted(calls - listed)
    assert not killed, f"{unit} kills `rauc status` at: {killed}"
