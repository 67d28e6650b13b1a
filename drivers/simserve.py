"""Run the printer and GRBL simulators standalone: ``python -m drivers.simserve``.

Prints the URLs to put in tillbox.toml or in ``TILLBOX_HIL_*`` (one ``KIND=URL`` per
line), then serves until interrupted. Useful to rehearse the HIL suite without a rig,
or to point a second process (the kiosk) at the same simulated devices.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers.simserve")
    parser.add_argument("--columns", type=int, default=48)
    parser.add_argument(
        "--speed", type=float, default=20.0, help="GRBL simulated motion speed-up (default 20)"
    )
    parser.add_argument("--port", type=int, default=0, help="printer TCP port (default: free)")
    args = parser.parse_args(argv)

    from drivers.escpos_sim import PrinterSimulator
    from drivers.grbl_sim import GrblSimulator

    printer = PrinterSimulator(args.columns, port=args.port)
    grbl = GrblSimulator(speed=args.speed)
    print(f"printer={printer.url}", flush=True)
    print(f"engraver=serial://{grbl.port}?baud=115200", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    printer.stop()
    grbl.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
