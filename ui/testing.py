"""Drive the real kiosk on a real X server with real X input events (tests, bench, hil).

The app runs as ``tillbox kiosk`` in a subprocess with ``TILLBOX_UI_PROBE`` set, so it
publishes where its tappable widgets are (ui/probe.py). A tap is ``xdotool`` moving the
X pointer there and clicking: the event goes through the X server, SDL2 and Kivy's
input stack exactly as a touchscreen's would. Results are checked in the log through
the core, never by reading widgets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from appliance.datadir import DataDir
from appliance.till import Till

REPO = Path(__file__).resolve().parents[1]
# Where the suite saves its screenshots: build/screenshots (ignored by git) unless
# TILLBOX_SCREENSHOTS_DIR says otherwise; refresh the committed set with
# TILLBOX_SCREENSHOTS_DIR=docs/screenshots .venv/bin/pytest tests/ui
SCREENSHOTS = Path(os.environ.get("TILLBOX_SCREENSHOTS_DIR") or REPO / "build" / "screenshots")
if not SCREENSHOTS.is_absolute():
    SCREENSHOTS = REPO / SCREENSHOTS
TILLBOX = Path(sys.executable).with_name("tillbox")
PIN = "2468"


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "", interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


def start_xvfb(width: int = 1280, height: int = 800) -> tuple[subprocess.Popen, str]:
    """A private X server on a free display number (Xvfb picks it with -displayfd)."""
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} is not installed; `apt-get install xvfb xdotool` "
                "(make test installs SYSTEM_PACKAGES)"
            )
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 10
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    if not number.strip():
        proc.kill()
        raise RuntimeError("Xvfb did not start (no display number)")
    return proc, f":{number.decode().strip()}"


def make_till(root: Path, *, fatal: list[str] | None = None, engraver_speed: float = 40) -> DataDir:
    """A demo till with a technician PIN, a USB folder and a fast engraver simulator."""
    ddir = DataDir(root)
    Till.init(ddir, "ui-test", demo=True).close()
    return configure_kiosk(ddir, fatal=fatal, engraver_speed=engraver_speed)


def sim_updates_till(root: Path, keyring: Path, compatible: str) -> DataDir:
    """A kiosk till (:func:`make_till`) whose updater is the simulated A/B card, trusting
    the release certificate ``keyring``, for the technician screen's update tests."""
    ddir = make_till(root, fatal=["log", "device_key", "disk"])
    config = ddir.load_config()
    config.update("updates", backend="sim://", keyring=str(keyring), compatible=compatible)
    ddir.save_config(config)
    return ddir


def configure_kiosk(
    ddir: DataDir,
    *,
    fatal: list[str] | None = None,
    engraver_speed: float = 40,
    camera: Path | None = None,
) -> DataDir:
    """Make an existing till ready for the kiosk tests: technician PIN, USB folder, fast
    engraver simulator; ``camera``: a sim camera that sees the picture in that file."""
    from appliance.techpin import hash_pin

    root = ddir.root
    config = ddir.load_config()
    config.update(
        "ui", technician_pin_hash=hash_pin(PIN, iterations=1000), usb_path=str(root.parent / "usb")
    )
    config.update("hardware", engraver=f"sim://?speed={engraver_speed:g}")
    if camera is not None:
        config.update("hardware", camera=f"sim://?scene={camera}")
    if fatal is not None:
        config.update("selftest", fatal=fatal)
    ddir.save_config(config)
    (root.parent / "usb").mkdir(exist_ok=True)
    return ddir


def show_qr(scene: Path, text: str | None) -> None:
    """Hold a QR code of ``text`` in front of the sim camera (None: nothing in view)."""
    import qrcode

    if text is None:
        scene.unlink(missing_ok=True)
        return
    tmp = scene.with_name(scene.name + ".tmp")
    qrcode.make(text, border=4).save(tmp, format="PNG")
    os.replace(tmp, scene)  # the camera never reads a half-written picture


class Kiosk:
    """One running ``tillbox kiosk`` and the means to tap it."""

    def __init__(
        self,
        display: str,
        ddir: DataDir,
        size: str = "800x480",
        lang: str | None = None,
        extra_env: dict[str, str] | None = None,
        wait_ready: bool = True,
    ) -> None:
        self.display = display
        self.ddir = ddir
        self.size = size
        self.probe = ddir.root.parent / f"probe-{size}.json"
        self.probe.unlink(missing_ok=True)
        env = {
            **os.environ,
            "DISPLAY": display,
            "TILLBOX_UI_PROBE": str(self.probe),
            "TILLBOX_KIVY_HOME": str(ddir.root.parent / "kivy-home"),
        }
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WAYLAND_DISPLAY", None)
        env.update(extra_env or {})
        cmd = [str(TILLBOX), "kiosk", "--data-dir", str(ddir.root), "--size", size]
        if lang:
            cmd += ["--lang", lang]
        self.log = open(ddir.root.parent / f"kiosk-{size}.log", "wb")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.window = (0, 0)
        if wait_ready:
            self.wait(lambda s: s.get("ready"), 20, "the kiosk's first frame")
            self.window = self._window()

    def _window(self) -> tuple[int, int]:
        out = wait_for(
            lambda: self._xdotool("search", "--pid", str(self.proc.pid)), 10, "the kiosk's X window"
        ).split()
        geo = self._xdotool("getwindowgeometry", "--shell", out[-1])
        values = dict(line.split("=") for line in geo.split() if "=" in line)
        return int(values.get("X", 0)), int(values.get("Y", 0))

    def _xdotool(self, *args: str) -> str:
        result = subprocess.run(
            ["xdotool", *args],
            env={**os.environ, "DISPLAY": self.display},
            capture_output=True,
            text=True,
            timeout=10,
        )
        return result.stdout.strip()

    # -- reading the probe -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the kiosk exited with {self.proc.returncode}; see "
                f"{self.log.name}:\n{Path(self.log.name).read_text()[-3000:]}"
            )
        try:
            return json.loads(self.probe.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, predicate: Any, timeout: float = 10.0, what: str = "") -> dict[str, Any]:
        found = {}

        def check() -> bool:
            nonlocal found
            found = self.state()
            return bool(found) and bool(predicate(found))

        try:
            wait_for(check, timeout, what)
        except AssertionError:
            brief = {k: v for k, v in found.items() if k != "widgets"}
            raise AssertionError(
                f"timed out waiting for {what}; last state {brief}, widgets "
                f"{sorted(found.get('widgets', {}))}"
            ) from None
        return found

    def widget(self, name: str) -> dict[str, Any]:
        return self.state().get("widgets", {}).get(name) or {}

    def text(self, name: str) -> str:
        return self.widget(name).get("text", "")

    def wait_screen(self, screen: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait(
            lambda s: s.get("screen") == screen and not s.get("popup"), timeout, f"screen {screen}"
        )

    def wait_text(self, name: str, needle: str, timeout: float = 10.0) -> str:
        state = self.wait(
            lambda s: needle in s.get("widgets", {}).get(name, {}).get("text", ""),
            timeout,
            f"{needle!r} in {name}",
        )
        return state["widgets"][name]["text"]

    # -- touching --------------------------------------------------------------------------
    def tap(self, name: str, times: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``name`` is shown, enabled and laid out, then click its centre (X events).

        "Laid out" means the same rectangle in snapshots at least two app frames apart: a
        screen that just appeared can still be moving its widgets into place, and a busy
        app may not have rewritten the probe yet.
        """
        deadline = time.monotonic() + timeout
        previous: tuple[dict[str, Any], int] | None = None
        while True:
            state = self.state()
            w = state.get("widgets", {}).get(name) or {}
            frame = state.get("frame", 0)
            ready = bool(w) and not w["disabled"]
            if ready and previous is not None and previous[0] == w and frame >= previous[1] + 2:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{name} did not become tappable in {timeout:g} s (last: "
                    f"{w or 'not shown'}; screen {state.get('screen')})"
                )
            if not ready or previous is None or previous[0] != w:
                previous = (w, frame) if ready else None
            time.sleep(0.03)
        x, y = self.window[0] + w["cx"], self.window[1] + w["cy"]
        args = ["mousemove", str(x), str(y), "click"]
        if times > 1:
            args += ["--repeat", str(times), "--delay", "40"]
        self._xdotool(*args, "1")

    def type_keys(self, text: str) -> None:
        """Type on the kiosk's own on-screen keyboard/keypad, key by key."""
        for ch in text:
            name = {" ": "kb-space"}.get(ch, f"kb-{ch}")
            self.tap(name)
            time.sleep(0.03)

    def type_text(self, text: str) -> None:
        """Real X key events, as a USB scanner or keyboard would send them ("\\n" = Enter)."""
        lines = text.split("\n")
        for index, line in enumerate(lines):
            if line:
                self._xdotool("type", "--delay", "4", line)
            if index < len(lines) - 1:
                self._xdotool("key", "Return")

    def keypad(self, digits: str, prefix: str = "key-") -> None:
        for ch in digits:
            self.tap(f"{prefix}{ch}")
            time.sleep(0.03)

    def to_sell(self) -> None:
        """From a passed self-test screen to the sell screen, as a cashier starts a day."""
        self.wait_text("verdict", "Ready to trade", timeout=20)
        self.tap("start-selling")
        self.wait_screen("sell")

    def to_settings(self) -> None:
        """Open the technician settings screen behind its PIN."""
        self.tap("nav-settings")
        self.keypad(PIN, "pin-")
        self.tap("pin-ok")
        self.wait_screen("settings")

    def open_shift(self, float_digits: str = "") -> None:
        """Tap the sell screen's open-shift offer and enter the counted opening float."""
        self.tap("sell-open-shift")
        self.wait_text("pin-shown", "0.00")  # the float pad shows money, not stars
        self.keypad(float_digits, "pin-")
        self.tap("pin-ok")
        self.wait(lambda s: "sell-open-shift" not in s["widgets"], what="the shift to open")

    def drag(self, name: str, points: list[tuple[float, float]]) -> None:
        """A finger stroke across ``name``: points are fractions of its width and height."""
        w = self.wait(lambda s: name in s.get("widgets", {}), 10, name)["widgets"][name]
        ox, oy = self.window

        def at(fx: float, fy: float) -> list[str]:
            return [str(int(ox + w["x"] + fx * w["w"])), str(int(oy + w["y"] + fy * w["h"]))]

        path = [points[0]]
        for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
            for i in range(1, 9):  # a finger moves continuously: 8 motion events per segment
                path.append((ax + (bx - ax) * i / 8, ay + (by - ay) * i / 8))
        self._xdotool("mousemove", *at(*path[0]), "mousedown", "1")
        for p in path[1:]:
            self._xdotool("mousemove", *at(*p))
            time.sleep(0.04)  # about two frames: the app sees every point
        self._xdotool("mouseup", "1")

    def screenshot(self, name: str) -> Path:
        """Save the current frame as SCREENSHOTS/<name>-<size>.png (via the app's GL)."""
        target = SCREENSHOTS / f"{name}-{self.size}.png"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        time.sleep(0.15)  # let the last change reach the screen
        request = self.probe.with_name(self.probe.name + ".shot")
        tmp = request.with_name(request.name + ".tmp")
        tmp.write_text(str(target))
        os.replace(tmp, request)  # the app must never read a half-written request
        self.wait(lambda s: str(target) in s.get("shots", []), 10, f"screenshot {name}")
        return target

    def stop(self) -> int:
        """SIGTERM (as systemd stops it), then SIGKILL after 10 s; returns the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()
        return self.proc.returncode


def events(ddir: DataDir, etype: str | None = None) -> list[Any]:
    """The log's events (optionally of one type), read through the core."""
    with Till.open(ddir) as till:
        return [e for e in till.log.events() if etype is None or e.type == etype]
