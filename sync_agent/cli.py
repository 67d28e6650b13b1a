"""``tillbox sync``: run the agent (default) or show its status.

``tillbox sync --data-dir DIR --broker mqtt://HOST:PORT [--once] [--timeout S]``
``tillbox sync status --data-dir DIR [--json]``
"""

from __future__ import annotations

import argparse

from appliance.cliutil import add_data_dir, add_json, data_dir, emit


def _setup_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def cmd_sync(args: argparse.Namespace) -> int:
    if args.action == "status":
        return cmd_status(args)
    return run(args)


def run(args: argparse.Namespace, send_health: bool = True) -> int:
    """``tillbox sync [run]``; ``send_health=False`` only for bench/drain.py's baseline."""
    from sync_agent import config
    from sync_agent.agent import Agent

    _setup_logging(args.verbose)
    folder = data_dir(args).require()
    cfg = config.load(folder.load_config().section("sync"), args.broker)
    agent = Agent(folder, cfg, once=args.once, timeout_s=args.timeout, send_health=send_health)
    code = agent.run()
    if args.once and code != 0:
        from appliance.errors import TillError

        if agent.refused is not None:
            raise TillError(agent.refusal())
        raise TillError(
            f"not every event was acked within {args.timeout} s; check the broker "
            "and the edge (`tillbox sync status`), then run again"
        )
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from appliance import sync_state
    from sync_agent.agent import status

    folder = data_dir(args).require()
    view = sync_state.view_for(folder)  # waiting = the log's events after the acked seq
    info = {**status(folder), **view.to_json(), "queued_events": view.waiting}
    text = (
        f"{'online' if view.online else 'offline'}: {view.waiting} events waiting, "
        f"acked up to seq {view.acked_seq} of {view.last_seq}"
    )
    if view.waiting and view.drain_estimate_s is not None:
        text += f", about {view.drain_estimate_s:.0f} s to drain once online"
    note = view.agent_note()
    if note:
        text += f"\n{note}; start it (`systemctl start tillbox-sync`) so the sales reach the region"
    if info.get("detail"):
        text += f"\n{info['detail']}"
    emit(args, info, text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tillbox sync`` (a command whose optional first word picks the action)."""
    p = sub.add_parser("sync", help="send the till's log to the region (MQTT) or show status")
    p.add_argument(
        "action",
        nargs="?",
        choices=["run", "status"],
        default="run",
        help="run the agent (default) or show its status",
    )
    add_data_dir(p)
    add_json(p)
    p.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://HOST:PORT or mqtts://HOST:PORT (default: [sync] broker)",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="exit 0 once every event is acked by the edge (non-zero on timeout)",
    )
    p.add_argument(
        "--timeout", type=float, metavar="S", help="give up after S seconds (with --once: exit 1)"
    )
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.set_defaults(handler=cmd_sync)
