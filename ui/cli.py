"""``tillbox kiosk``: start the touchscreen app (placeholder until the Kivy app lands)."""

from __future__ import annotations

import argparse

from appliance.cliutil import add_data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kiosk", help="start the touchscreen kiosk")
    add_data_dir(p)
    p.set_defaults(handler=_kiosk)


def _kiosk(args: argparse.Namespace) -> int:
    print("The touchscreen app is not built yet; use the CLI meanwhile, e.g.\n"
          f"  tillbox shift open --data-dir {args.data_dir}\n"
          f"  tillbox sale --data-dir {args.data_dir} --item MUG-01 --pay cash")
    return 0
