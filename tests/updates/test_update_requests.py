"""The kiosk's install and restart handed to root (drivers/update_requests.py).

The kiosk's side is the real RaucUpdater with the process pretending not to be root
(its ``status``/``inspect`` come from a fake card: the kiosk reads RAUC's status
unprivileged); root's side is ``serve`` running in a thread against that fake card,
which records what it was asked to do. The till's log and its install lock are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance import events as ev
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.services import updates as service
from appliance.testing import demo_data_dir
from appliance.till import Till
from appliance.updates import (
    BundleInfo,
    BundleRejected,
    InstallFailed,
    SlotState,
    UpdaterError,
    UpdaterStatus,
    plan_install,
)
from drivers import update_requests
from drivers.rauc import RaucUpdater

COMPATIBLE = "tillbox-test"


@dataclass
class FakeCard:
    """Root's updater: two slots, a bundle's version is its file's text. ``hold``: an
    install waits (up to 5 s) for it after its first progress step."""

    url: str = "fake://"
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail: TillError | None = None
    booted: str = "A"
    primary: str = "A"
    versions: dict[str, str] = field(default_factory=lambda: {"A": "2.0.0"})
    hold: threading.Event | None = None

    def status(self) -> UpdaterStatus:
        def slot(name: str) -> SlotState:
            state = "booted" if name == self.booted else "inactive"
            return SlotState(
                name, f"rootfs.{'AB'.index(name)}", state, True, self.versions.get(name)
            )

        other = "B" if self.booted == "A" else "A"
        return UpdaterStatus(COMPATIBLE, slot(self.booted), slot(other), self.primary)

    def inspect(self, bundle: Path) -> BundleInfo:
        return BundleInfo(str(bundle), COMPATIBLE, Path(bundle).read_text().strip(), "test")

    def install(self, bundle: Path, progress=None) -> None:
        self.calls.append(("install", Path(bundle).name))
        progress(40, "Copying image to rootfs.1")
        if self.hold is not None:
            self.hold.wait(5)
        if self.fail is not None:
            raise self.fail
        other = "B" if self.booted == "A" else "A"
        self.versions[other] = self.inspect(bundle).version
        self.primary = other
        progress(100, "Installing done")

    def reboot(self) -> None:
        self.calls.append(("reboot",))
        self.booted = self.primary

    def mark_good(self) -> None:
        self.calls.append(("mark_good",))

    def mark_bad(self) -> None:
        self.calls.append(("mark_bad",))


class KioskRauc(RaucUpdater):
    """The kiosk's RaucUpdater: reads the (fake) card's status, hands installs to root."""

    def __init__(self, card: FakeCard, data_dir: DataDir) -> None:
        super().__init__("rauc://", data_dir=data_dir)
        self.card = card

    def status(self) -> UpdaterStatus:
        return self.card.status()

    def inspect(self, bundle: Path) -> BundleInfo:
        return self.card.inspect(bundle)


def forbidden_command(argv, *args, **kwargs):
    raise AssertionError(f"a test ran {argv!r}: the kiosk must hand it to root")


@pytest.fixture
def ddir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataDir:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the kiosk's user
    # never the real thing from a test, whatever the code under test does (`systemctl
    # reboot`, `rauc install`): the machine running the tests may well be root's
    monkeypatch.setattr(subprocess, "run", forbidden_command)
    monkeypatch.setattr(update_requests, "POLL_S", 0.02)
    monkeypatch.setattr(update_requests, "PICKUP_S", 3.0)
    return demo_data_dir(tmp_path / "till")


@pytest.fixture
def card() -> FakeCard:
    return FakeCard()


@pytest.fixture
def stick(tmp_path: Path) -> Path:
    path = tmp_path / "usb" / "tillbox-2.1.0.raucb"
    path.parent.mkdir()
    path.write_text("2.1.0\n")
    return path


@contextmanager
def root_service(ddir: DataDir, card: FakeCard) -> Iterator[list[str]]:
    """``serve`` polled in a thread, as the path unit would start it: its lines."""
    stop, lines, errors = threading.Event(), [], []

    def loop() -> None:
        with Till.open(ddir) as till:
            while not stop.is_set():
                try:
                    line = update_requests.serve(till, card)
                except Exception as exc:  # noqa: BLE001 - reported by the test below
                    errors.append(exc)
                    return
                if line:
                    lines.append(line)
                stop.wait(0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield lines
    finally:
        stop.set()
        thread.join(10)
    assert not errors


def update_types(ddir: DataDir) -> list[str]:
    with Till.open(ddir) as till:
        return [e.type for e in till.log.events() if e.type.startswith("update.")]


@contextmanager
def started_install(ddir: DataDir, card: FakeCard, bundle: Path, version: str) -> Iterator[Path]:
    """What the core does before it calls the updater: the bundle staged, the install
    lock held, ``update.started`` for ``version`` the log's newest update event."""
    with service.install_lock(ddir):
        staged = service.stage(bundle, ddir)
        info = BundleInfo(str(bundle), COMPATIBLE, version, "test")
        with Till.open(ddir) as till:
            till.record(ev.UPDATE_STARTED, plan_install(card.status(), info).payload())
        yield staged


def write_request(ddir: DataDir, **request: str) -> None:
    folder = service.updates_dir(ddir)
    (folder / update_requests.REQUEST).write_text(json.dumps(request))


def answer(ddir: DataDir) -> dict:
    return json.loads((service.updates_dir(ddir) / update_requests.ANSWER).read_text())


def test_the_kiosks_install_runs_as_root_and_relays_its_progress(ddir, card, stick):
    card.hold = threading.Event()
    seen = []

    def progress(percent: int, what: str) -> None:
        seen.append((percent, what))
        if percent == 40:
            card.hold.set()  # relayed while root's install still runs

    with root_service(ddir, card) as lines, Till.open(ddir) as till:
        result = service.install(till, KioskRauc(card, ddir), stick, progress=progress)
    assert result.plan.to_version == "2.1.0"
    assert card.hold.is_set() and (40, "Copying image to rootfs.1") in seen
    assert seen[-1] == (100, "Installing done")
    assert card.calls == [("install", "tillbox-2.1.0.raucb")]
    assert lines == ["installed 2.1.0 from tillbox-2.1.0.raucb"]
    assert update_types(ddir) == [ev.UPDATE_STARTED, ev.UPDATE_INSTALLED]
    folder = service.updates_dir(ddir)
    assert not (folder / update_requests.REQUEST).exists()
    assert not (folder / update_requests.TAKEN).exists()


@pytest.mark.parametrize(
    "error",
    [
        BundleRejected(
            "tillbox-2.1.0.raucb was changed or damaged after it was signed (its signature "
            "does not match its contents); download or copy it again"
        ),
        InstallFailed(
            "the install failed (Failed writing image); the running system is untouched: "
            "check the card (`tillbox selftest --only disk`) and try again"
        ),
        UpdaterError("tillbox-2.1.0.raucb is for other hardware (Compatible mismatch)"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_failed_install_raises_roots_error_word_for_word(ddir, card, stick, error):
    card.fail = error
    with root_service(ddir, card) as lines, Till.open(ddir) as till:
        with pytest.raises(TillError) as raised:
            service.install(till, KioskRauc(card, ddir), stick)
    assert type(raised.value) is type(error) and str(raised.value) == str(error)
    assert update_types(ddir) == [ev.UPDATE_STARTED, ev.UPDATE_FAILED]
    assert len(lines) == 1 and str(error) in lines[0]


def test_a_bundle_outside_the_updates_folder_or_a_symlink_is_refused(ddir, card, stick, tmp_path):
    kiosk = KioskRauc(card, ddir)
    with started_install(ddir, card, stick, "2.1.0") as staged, root_service(ddir, card):
        link = staged.parent / "link.raucb"
        link.symlink_to(staged)
        outside = tmp_path / "elsewhere.raucb"
        outside.write_text("2.1.0\n")
        sneaky = service.updates_dir(ddir) / ".." / "elsewhere.raucb"
        sneaky.write_text("2.1.0\n")
        for bundle, why in [
            (stick, "is not in"),
            (outside, "is not in"),
            (sneaky, "is not in"),
            (link, "is not a regular file"),
            (staged.parent, "is not a regular file"),
        ]:
            with pytest.raises(UpdaterError, match=why) as raised:
                kiosk.install(bundle)
            assert "\n" not in str(raised.value)
        assert card.calls == []
        kiosk.install(staged)  # the staged copy itself: root installs it
    assert card.calls == [("install", staged.name)]


def test_an_install_the_log_did_not_start_is_refused(ddir, card, stick):
    kiosk = KioskRauc(card, ddir)
    staged = service.stage(stick, ddir)
    with root_service(ddir, card):
        with pytest.raises(UpdaterError, match="the till's log records no install now"):
            kiosk.install(staged)  # nothing recorded
        with started_install(ddir, card, stick, "2.2.0") as staged:
            with pytest.raises(UpdaterError, match="records no install of 2.1.0"):
                kiosk.install(staged)  # the log started another version
        staged = service.stage(stick, ddir)
        with pytest.raises(UpdaterError, match="records no install now"):
            kiosk.install(staged)  # started, but nobody holds the install lock: cut off
    assert card.calls == []


def test_a_reboot_is_only_run_for_an_install_awaiting_it(ddir, card, stick):
    kiosk = KioskRauc(card, ddir)
    with root_service(ddir, card) as lines:
        with pytest.raises(UpdaterError, match="no installed update waits for a restart"):
            kiosk.reboot()
        assert card.calls == []
        with Till.open(ddir) as till:
            service.install(till, kiosk, stick)
        kiosk.reboot()
    assert card.calls == [("install", stick.name), ("reboot",)] and card.booted == "B"
    assert lines[-1] == "restarting into 2.1.0"


def test_no_answer_is_one_line_saying_what_to_do(ddir, card, stick, monkeypatch):
    monkeypatch.setattr(update_requests, "PICKUP_S", 0.3)
    with Till.open(ddir) as till:
        with pytest.raises(UpdaterError) as raised:
            service.install(till, KioskRauc(card, ddir), stick)
    message = str(raised.value)
    assert "did not answer" in message
    assert "run `tillbox update install BUNDLE` as root" in message
    assert "as root, or restart the till" in message and "\n" not in message
    folder = service.updates_dir(ddir)
    assert not (folder / update_requests.REQUEST).exists()  # withdrawn: not run later
    with pytest.raises(UpdaterError, match="did not answer.*`tillbox update reboot` as root"):
        KioskRauc(card, ddir).reboot()


def test_a_request_is_never_run_twice(ddir, card, stick):
    with started_install(ddir, card, stick, "2.1.0") as staged, Till.open(ddir) as till:
        write_request(ddir, action="install", bundle=str(staged), id="a1b2")
        assert update_requests.serve(till, card) == f"installed 2.1.0 from {staged.name}"
        assert answer(ddir)["state"] == "done"
        assert update_requests.serve(till, card) == ""  # the path unit fired again
        write_request(ddir, action="install", bundle=str(staged), id="a1b2")  # replayed
        assert "served already" in update_requests.serve(till, card)
        assert answer(ddir)["state"] == "done"
    assert card.calls == [("install", staged.name)]


def test_root_refuses_what_is_not_a_request(ddir, card):
    folder = service.updates_dir(ddir)
    folder.mkdir()
    with Till.open(ddir) as till:
        assert update_requests.serve(till, card) == ""
        (folder / update_requests.REQUEST).symlink_to(ddir.config_path)
        assert "not a small JSON file" in update_requests.serve(till, card)
        os.mkfifo(folder / update_requests.REQUEST)  # would block a plain open()
        assert "not a small JSON file" in update_requests.serve(till, card)
        write_request(ddir, action="format-disk", bundle="", id="x1")
        assert "without its action" in update_requests.serve(till, card)
        write_request(ddir, action="reboot", bundle="", id="x2", pad="x" * 5000)
        assert "larger than 4096 bytes" in update_requests.serve(till, card)
    assert card.calls == [] and not (folder / update_requests.ANSWER).exists()


def test_root_will_not_serve_rauc_unprivileged(ddir):
    with Till.open(ddir) as till, pytest.raises(UpdaterError, match="runs as root"):
        update_requests.serve(till, RaucUpdater("rauc://", data_dir=ddir))
