"""The tills of one stall learn each other's stock through the region while online: the
edge signs a snapshot of every till's stored movements after ingest (throttled) and
publishes it retained on tillbox/v1/{tenant}/region/stock/{stall}; each till's agent keeps
its own stall's, and Till.stall_stock adds the other tills' movements to its own count.
Overselling is shown, never blocked. Real mosquitto (shipped config), agents and edge."""

from __future__ import annotations

import json

import pytest

from appliance.pricing import CartLine
from appliance.till import Till
from systest.multitill import Stall
from systest.sync import check_exactly_once, run_tillbox, wait_for

pytestmark = pytest.mark.slow


def stall_stock(folder, sku):
    with Till.open(folder) as till:
        return till.stall_stock(sku)


def synced(folder, sku):
    """The stall's stock once the till holds a snapshot; None before."""
    found = stall_stock(folder, sku)
    return found.qty if found.synced_ms is not None else None


def sell(folder, sku, qty):
    with Till.open(folder) as till:
        return till.sell([CartLine(sku, qty)], "cash")


def test_the_tills_of_a_stall_see_each_others_sales_and_an_oversell(
    tmp_path, broker, db_url, region
):
    with Stall(
        tmp_path, broker, db_url, region, ("t1", "t2", "t3"), edge_args=("--stock-interval", "0.3")
    ) as stall:
        store_stall = run_tillbox(  # t3 serves another stall: its sales are not s1's shelf
            "edge", "device", "set", "--db", db_url, "--device", "t3", "--stall", "s2"
        )
        assert store_stall.returncode == 0, store_stall.stderr
        roster = stall.publish("roster", "publish")
        stall.wait_list("roster", roster["version"])
        t1, t2, t3 = (stall.tills[d] for d in ("t1", "t2", "t3"))
        assert stall_stock(t2, "BOARD-ENG") == (10, None)
        sell(t1, "BOARD-ENG", 3)
        sell(t3, "BOARD-ENG", 1)
        wait_for(lambda: stall_stock(t2, "BOARD-ENG").qty == 7, 30, "t2 to learn of t1's sale")
        qty, synced_ms = stall_stock(t2, "BOARD-ENG")
        assert synced_ms is not None and qty == 7
        wait_for(lambda: synced(t1, "BOARD-ENG") == 7, 30, "t1's own snapshot")
        assert stall_stock(t3, "BOARD-ENG").qty == 9  # s2: only its own sale
        # both offline, both sell what they believe is left: 7 + 7 of 7
        stall.cut("t1", "t2")
        stall.wait_offline("t1", "t2")
        sell(t1, "BOARD-ENG", 7)
        sell(t2, "BOARD-ENG", 7)  # never blocked
        assert stall_stock(t2, "BOARD-ENG").qty == 0  # it cannot know of t1's yet
        stall.heal("t1", "t2")
        wait_for(lambda: stall_stock(t2, "BOARD-ENG").qty == -7, 30, "the oversell to show")
        assert stall_stock(t2, "BOARD-ENG").oversold
        wait_for(lambda: stall_stock(t1, "BOARD-ENG").qty == -7, 30, "t1 to see it too")
        stall.wait_synced()
        check_exactly_once(db_url, stall.folders)  # the ledgers and device_stock hold
        out = run_tillbox("edge", "check", "--db", db_url, "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["ok"], out.stdout
        counters = json.loads(
            run_tillbox("sync", "status", "--data-dir", str(t2.root), "--json").stdout
        )["counters"]
        assert counters.get("stock_kept", 0) >= 2
        assert not any(k.startswith("stock_rejected") for k in counters)
