"""``tillbox kiosk``: start the touchscreen app (Kivy is imported only in the handler)."""

from __future__ import annotations

import argparse
import sys

from appliance.cliutil import add_data_dir, data_dir

SIZES = ("800x480", "1280x800")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kiosk",
        help="start the touchscreen kiosk (simulated devices unless tillbox.toml names real ones)",
    )
    add_data_dir(p)
    p.add_argument(
        "--size",
        default=None,
        metavar="WxH",
        help="window size: 800x480 (7-inch display, default) or 1280x800 (10-inch)",
    )
    p.add_argument(
        "--lang",
        default=None,
        metavar="LANG",
        help="language for this run: en, de (default: [ui] lang in tillbox.toml)",
    )
    p.add_argument(
        "--fullscreen",
        action="store_true",
        help="fill the display (the default on a Pi console with SDL2 kmsdrm)",
    )
    p.add_argument(
        "--set-technician-pin",
        action="store_true",
        help="read a 4-12 digit technician PIN from stdin, store its hash, and exit",
    )
    p.set_defaults(handler=_kiosk)


def _size(text: str | None) -> tuple[int, int]:
    from appliance.errors import TillError

    value = text or SIZES[0]
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise TillError(
            f"--size {value!r} must be WIDTHxHEIGHT, e.g. 800x480 or 1280x800"
        ) from None
    if not (320 <= w <= 7680 and 240 <= h <= 4320):
        raise TillError(f"--size {value} is not a display size; use 800x480 or 1280x800")
    return w, h


def _set_pin(args: argparse.Namespace) -> int:
    from appliance.techpin import hash_pin

    ddir = data_dir(args).require()
    pin = sys.stdin.readline().strip()
    stored = hash_pin(pin)  # refuses a PIN that is not 4-12 digits, with the fix
    config = ddir.load_config()
    config.update("ui", technician_pin_hash=stored)
    ddir.save_config(config)
    print(f"technician PIN set for {ddir.root} (only its hash is stored)")
    return 0


def _kiosk(args: argparse.Namespace) -> int:
    if args.set_technician_pin:
        return _set_pin(args)
    import time

    started = time.perf_counter()
    from appliance import sdnotify
    from appliance.errors import TillError
    from ui import boot, i18n

    sdnotify.StartupHeartbeat().start()  # until READY=1, at the app's first frame

    ddir = data_dir(args).require()
    size = _size(args.size)
    if args.lang and args.lang not in i18n.available():
        raise TillError(
            f"--lang {args.lang} has no catalog; use one of {', '.join(i18n.available())}"
        )
    boot.prepare(ddir, size, fullscreen=args.fullscreen)
    from ui.app import KioskApp

    KioskApp(ddir, lang=args.lang, started=started).run()
    return 0
