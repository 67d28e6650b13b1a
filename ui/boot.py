"""Kivy's environment, set before Kivy is imported (it reads it at import time).

- ``KIVY_NO_ARGS``: Kivy must not parse tillbox's command line.
- ``KIVY_HOME`` under the data folder: Kivy writes its config and logs there, never to ~.
- ``KIVY_LOG_MODE=PYTHON``: Kivy logs through :mod:`logging` (journald picks it up),
  quiet unless ``TILLBOX_DEBUG`` is set.
- On a Pi console with no X or Wayland: SDL2's ``kmsdrm`` video driver, full screen;
  SDL reads the touchscreen too (evdev) and hands Kivy each touch as a mouse click.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.datadir import DataDir


def on_console() -> bool:
    """No display server: a Pi booted to the console (the kiosk image)."""
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def prepare(data_dir: DataDir, size: tuple[int, int], *, fullscreen: bool = False) -> None:
    home = Path(os.environ.get("TILLBOX_KIVY_HOME") or data_dir.root / ".kivy")
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(home))
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    console = on_console()
    if console:
        os.environ.setdefault("KIVY_WINDOW", "sdl2")
        os.environ.setdefault("SDL_VIDEODRIVER", "kmsdrm")
        fullscreen = True
    level = logging.DEBUG if os.environ.get("TILLBOX_DEBUG") else logging.WARNING
    logging.getLogger("kivy").setLevel(level if level == logging.DEBUG else logging.ERROR)

    from kivy.config import Config
    from kivy.logger import Logger

    Logger.setLevel(logging.DEBUG if level == logging.DEBUG else logging.ERROR)
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "log_level", "debug" if level == logging.DEBUG else "warning")
    Config.set("graphics", "width", str(size[0]))
    Config.set("graphics", "height", str(size[1]))
    Config.set("graphics", "resizable", "0")
    Config.set("graphics", "position", "custom")
    Config.set("graphics", "left", "0")
    Config.set("graphics", "top", "0")
    Config.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    Config.set("graphics", "show_cursor", "0" if console else "1")
    # A mouse click is one finger: no red multitouch-emulation dots on right click.
    Config.set("input", "mouse", "mouse,disable_multitouch")
    # On the console, touch comes once, through SDL: with kmsdrm SDL reads every input
    # device itself (evdev, as the kiosk user in group input) and turns a touchscreen's
    # touch into a mouse click, multitouch panel or single-touch alike. A Kivy
    # touchscreen provider (probesysfs + mtdev) next to it would make each tap a second
    # touch: one tap, two presses.
    Config.set("kivy", "keyboard_mode", "system")
