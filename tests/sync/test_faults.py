"""Faults while a till drains: a flaky link, broker crashes, agent and edge SIGKILLs.

After the faults stop, the set checker must find every event the till confirmed
stored at the edge exactly once, in order, and the ledgers equal to
recomputations. The till keeps selling throughout (the agent must not block it).
"""

from __future__ import annotations

import random
import sqlite3
import time

import pytest

from edge import admin
from edge.store import Store
from systest.sync import (
    agent_proc,
    check_exactly_once,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    read_state,
    sell,
    wait_for,
)

pytestmark = pytest.mark.slow


def drained(folder) -> bool:
    try:
        state = read_state(folder)
    except (OSError, ValueError):
        return False
    return state["queued_events"] == 0 and state["acked_seq"] == state["last_seq"] > 0


def agent_chain_is_whole(folder) -> None:
    """The agent's sealed segments form one chain (a re-seal would have forked it)."""
    conn = sqlite3.connect(folder.sync_dir / "agent.db")
    rows = conn.execute(
        "SELECT first_seq, last_seq, id, prev FROM segments ORDER BY first_seq"
    ).fetchall()
    conn.close()
    prev_last, prev_id = 0, "0" * 64
    for first, last, seg_id, prev in rows:
        assert (first, prev) == (prev_last + 1, prev_id)
        prev_last, prev_id = last, seg_id


def test_flaky_link_drop_reset_delay_blackhole(tmp_path, broker, proxy, db_url, region):
    till = make_till(tmp_path, "t1", region, segment_max_events=20)
    sell(till, 150)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    agent = agent_proc(till, proxy.url).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        rng = random.Random(4)
        for round_ in range(6):
            time.sleep(rng.uniform(0.1, 0.4))
            fault = ("reset", "drop", "blackhole", "delay", "refuse", "reset")[round_]
            if fault == "blackhole":
                proxy.blackhole(True)
                time.sleep(2.5)  # longer than the agent's keepalive: it must notice
            elif fault == "delay":
                proxy.delay(0.05)
                time.sleep(1.0)
            elif fault == "refuse":
                proxy.refuse(True)
                proxy.drop()
                time.sleep(1.0)
            else:
                getattr(proxy, fault)()
            proxy.heal()
            sell(till, 15)  # the cashier keeps selling through it all
        # the faults really hit the agent: it went offline and came back several times
        assert agent.log().count("sync offline") >= 3, agent.log()
        wait_for(lambda: drained(till), 60, "the till to drain after the faults")
        assert agent.alive()
    finally:
        agent.stop()
        edge.stop()
    check_exactly_once(db_url, [till])
    agent_chain_is_whole(till)


def test_broker_crash_and_restart(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region, segment_max_events=20)
    sell(till, 120)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    agent = agent_proc(till, broker.url).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        for _ in range(2):
            time.sleep(0.3)
            broker.kill()  # whatever it queued in memory is gone
            sell(till, 20)
            time.sleep(0.5)
            broker.start()
        wait_for(lambda: drained(till), 60, "the till to drain after broker crashes")
        assert agent.alive() and edge.alive()
    finally:
        agent.stop()
        edge.stop()
    check_exactly_once(db_url, [till])


def test_agent_sigkill_at_random_moments_resumes_exactly(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region, segment_max_events=10)
    sell(till, 200, fast=True)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    rng = random.Random(7)
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        mid_drain = 0
        for round_no in range(6):
            agent = agent_proc(till, broker.url).start()
            if round_no % 2:
                # from its connection, not its start: on a loaded machine a start-up alone
                # can outlast any fixed delay, and then no kill would land mid-drain
                wait_for(lambda a=agent: "sync connected" in a.log(), 30, "the agent")
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                time.sleep(rng.uniform(0.4, 1.0))  # includes start-up, sealing, mid-publish
            agent.kill()
            if till.sync_dir.joinpath("state.json").exists():
                state = read_state(till)
                mid_drain += 0 < state["acked_seq"] < state["last_seq"]
            sell(till, 40)
        assert mid_drain >= 1  # at least one kill landed while segments were in flight
        final = agent_proc(till, broker.url, "--once", "--timeout", "60").start()
        assert final.wait(70) == 0, final.log()[-3000:]
    finally:
        edge.stop()
    stats = check_exactly_once(db_url, [till])
    agent_chain_is_whole(till)
    # never a re-sealed segment with different bytes: the edge saw no chain mismatch
    assert "chain_mismatch" not in stats["rejected"] and "overlap" not in stats["rejected"]


def test_edge_sigkill_and_two_workers_sharing_the_load(tmp_path, broker, any_db, region):
    tills = [make_till(tmp_path, d, region, segment_max_events=10) for d in ("t1", "t2")]
    for till in tills:
        sell(till, 100)
    enroll(any_db, *tills)
    workers = [
        edge_proc(tmp_path, any_db, broker.url, region, f"tillbox-edge-{i}", "--verbose").start()
        for i in (1, 2)
    ]
    agents = [agent_proc(till, broker.url).start() for till in tills]
    try:
        wait_for(lambda: all(edge_ready(w) for w in workers), 20, "both workers")
        for _ in range(3):
            time.sleep(0.4)
            workers[0].kill()  # mid-transaction or between commit and ack
            time.sleep(0.3)
            workers[0].start()
        wait_for(lambda: all(drained(t) for t in tills), 60, "both tills to drain")
        assert all("edge stored" in w.log() for w in workers)  # the broker split the load
    finally:
        for proc in agents + workers:
            proc.stop()
    check_exactly_once(any_db, tills)
    store = Store.open(any_db)
    try:
        assert admin.check(store)["ok"]
    finally:
        store.close()
