"""``make region``: broker, edge, console and two tills that sell, on one machine; the
tills' sales reach the console within seconds (receipts, and takings per stall from the
rollups ingest keeps), and everything stops cleanly."""

from __future__ import annotations

import json
import random
import urllib.request
from http.cookiejar import CookieJar

import pytest

from edge.broker import free_port
from systest.region import TILLS, RegionDemo
from systest.sync import wait_for

pytestmark = pytest.mark.slow


def test_the_demo_regions_sales_reach_the_console(tmp_path):
    demo = RegionDemo(tmp_path / "region", free_port(), sell_every_s=0.5)
    try:
        demo.start()
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{demo.web_port}"

        def console_up() -> bool:
            try:
                return opener.open(base + "/login", timeout=2).status == 200
            except OSError:
                return False

        wait_for(console_up, 60, "the console to answer")
        body = json.dumps({"name": "merchant", "password": demo.logins["merchant"]}).encode()
        request = urllib.request.Request(
            base + "/api/v1/session", body, {"Content-Type": "application/json"}
        )
        assert json.load(opener.open(request, timeout=10))["tenant"] == "demo"
        assert (tmp_path / "region" / "logins.txt").stat().st_mode & 0o077 == 0
        rng = random.Random(7)

        def receipts_of_both_tills() -> bool:
            demo.sell_one(rng)
            found = json.load(opener.open(base + "/api/v1/receipts?q=1", timeout=10))
            return {r["device_id"] for r in found["receipts"]} == {d for d, _, _ in TILLS}

        wait_for(receipts_of_both_tills, 90, "both tills' receipts at the console", interval=1)
        sales = json.load(opener.open(base + "/api/v1/sales?group=stall", timeout=10))
        assert {r["key"] for r in sales["rows"]} == {stall for _, stall, _ in TILLS}
        assert all(r["sales"] > 0 and r["gross_minor"] > 0 for r in sales["rows"])
    finally:
        demo.stop()
    assert all(not p.alive() for p in demo.procs)
