"""``tillbox edge serve`` or ``tillbox sync`` with rollups and telemetry off (bench only).

The drain benchmark's baseline: the same commands and options as ``tillbox``, but the
edge keeps no rollups and takes no health messages, and the agent sends none. No
product command offers this: a region without them has no console pages to show.
Usage: ``python bench/bare.py edge serve ...`` or ``python bench/bare.py sync ...``.
"""

from __future__ import annotations

import sys

from appliance.cli import build_parser
from appliance.errors import TillError
from edge import cli as edge_cli
from sync_agent import cli as sync_cli


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.handler is edge_cli.cmd_serve:
            return edge_cli.serve(args, rollups=False, telemetry=False)
        if args.handler is sync_cli.cmd_sync and args.action == "run":
            return sync_cli.run(args, send_health=False)
    except TillError as exc:
        sys.stderr.write(f"bare: error: {exc}\n")
        return exc.exit_code
    raise SystemExit("bare.py runs `edge serve` or `sync` only")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
