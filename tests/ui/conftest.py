"""Fixtures for the kiosk tests: one private Xvfb for the session."""

from __future__ import annotations

import pytest

from ui.testing import start_xvfb


@pytest.fixture(scope="session")
def xvfb():
    try:
        proc, display = start_xvfb()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield display
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def release_kit(tmp_path):
    """A test release key and its bundles (real openssl, rauc, mksquashfs): the update
    tests fail, never skip, without them (`make system-deps` installs them)."""
    from systest.updates import TOOLS, ReleaseKit, missing

    if missing(TOOLS):
        pytest.fail(f"needs {', '.join(missing(TOOLS))} (`make system-deps` installs them)")
    return ReleaseKit(tmp_path / "release")


class HubCalls:
    """The kiosk's device hub without a window: each of its background calls run to its
    end, the callbacks it posts for the UI thread run here, in order. ``seen`` keeps what
    the last call reported: ("progress", ...) steps, then ("done", result) or
    ("failed", message)."""

    def __init__(self, data_dir) -> None:
        import queue

        from ui.devices import DeviceHub

        self.posted: queue.Queue = queue.Queue()
        self.hub = DeviceHub(data_dir, self.posted.put)
        self.seen: list[tuple[str, object]] = []

    def run(self, start) -> tuple[str, object]:
        """``start(done, failed)`` begins the call; its ("done"/"failed", value)."""
        self.seen.clear()
        start(lambda r: self.seen.append(("done", r)), lambda m: self.seen.append(("failed", m)))
        while not self.seen or self.seen[-1][0] not in ("done", "failed"):
            self.posted.get(timeout=60)()
        return self.seen[-1]

    def close(self) -> None:
        self.hub.close()
