"""The console in a real browser: Debian's Chromium driven by Playwright against
``tillbox edge web`` on a free port, over a region whose tills sold (SQLite and
PostgreSQL), with the region running: a real mosquitto (the shipped config), ``tillbox
edge serve`` and the sync agents of two tills, which publish their health. Each role
signs in through the form; the numbers on the pages are checked against the tills' own
logs; another tenant's URL is refused; a form without its CSRF token is refused; a stock
flag is resolved; the fleet flags the till whose agent was killed.

With ``TILLBOX_SCREENSHOTS=1`` the first test also saves every page at desktop (1280) and
phone (390) width to docs/console/ (the committed screenshots come from it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.formats.receipt import receipt_qr_payload
from appliance.till import Till
from edge.broker import LocalBroker
from systest.console import PASSWORD, ConsoleServer, set_sync
from systest.sync import (
    ADMIN_PASSWORD,
    DEVICES,
    EDGE_PASSWORD,
    WORKERS,
    agent_proc,
    device_password,
    edge_proc,
    edge_ready,
    wait_for,
)

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
FIRST_PAGE = {
    "ada": "/sales",
    "mia": "/sales",
    "tess": "/exposure",
    "tom": "/verify",
    "ivan": "/verify",
}


SILENT_AFTER_MIN = "0.1"  # six seconds: the agents report every second


@pytest.fixture(scope="module")
def region_running(populated, region, tmp_path_factory):
    """The broker, one ingest worker and the agents of t1 and t2 (t3 stays offline)."""
    folder = tmp_path_factory.mktemp("running")
    broker = LocalBroker(
        folder / "broker",
        {d: device_password(d) for d in DEVICES},
        workers={w: EDGE_PASSWORD for w in WORKERS},
        admin_password=ADMIN_PASSWORD,
    ).start()
    edge = edge_proc(folder, populated.db, broker.url, region).start()
    agents = {}
    try:
        wait_for(lambda: edge_ready(edge) or not edge.alive(), 60, "the edge to subscribe")
        assert edge.alive(), edge.log()
        for device in ("t1", "t2"):
            set_sync(populated.folders[device], health_interval_s=1.0)
            agents[device] = agent_proc(populated.folders[device], broker.url).start()
        yield agents
    finally:
        for agent in agents.values():
            agent.stop()
        edge.stop()
        broker.stop()


@pytest.fixture(scope="module")
def server(populated, region, region_running, tmp_path_factory):
    console = ConsoleServer(
        populated.db,
        tmp_path_factory.mktemp("web"),
        region.key_path,
        "--silent-after",
        SILENT_AFTER_MIN,
    ).start()
    yield console
    console.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


def sign_in(browser, server, name, width=1280, height=900):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(server.url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
    return page


PAGES = {
    "mia": [
        "/sales",
        "/sales?group=day",
        "/refunds",
        "/stock",
        "/exposure",
        "/receipts?q=2",
        "/receipts/t1/2",
        "/verify",
    ],  # fmt: skip
    "ada": ["/admin/users", "/admin/tenants", "/admin/devices", "/admin/region", "/admin/audit"],
}


@pytest.mark.skipif(
    not os.environ.get("TILLBOX_SCREENSHOTS"), reason="set TILLBOX_SCREENSHOTS=1 to save them"
)
def test_screenshots_of_every_page(browser, server, console_db):
    if not console_db.startswith("sqlite"):
        pytest.skip("one set of screenshots is enough")
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(server.url + "/login")
    page.screenshot(path=str(SHOTS / "login-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "login-390.png"), full_page=True)
    context.close()
    for name, paths in PAGES.items():
        page = sign_in(browser, server, name)
        for path in paths:
            stem = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-") or "home"
            for width, height in ((1280, 800), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                page.goto(server.url + path)
                page.screenshot(path=str(SHOTS / f"{stem}-{width}.png"), full_page=True)
        page.context.close()


def test_each_role_signs_in_through_the_form_and_sees_only_its_pages(browser, server):
    for name, first in FIRST_PAGE.items():
        page = sign_in(browser, server, name)
        assert page.url == server.url + first, (name, page.url)
        nav = page.locator("nav.menu a").all_inner_texts()
        assert nav, name
        if name == "mia":
            assert "Fleet" not in nav and "Users" not in nav and "Sales" in nav
        if name == "tess":
            assert "Fleet" in nav and "Sales" not in nav
        page.context.close()


def test_a_wrong_password_is_refused_in_words(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/login")
    page.fill("input[name=name]", "mia")
    page.fill("input[name=password]", "not the password")
    page.click("form[action='/login'] button[type=submit]")
    assert "wrong name or password" in page.locator(".error").inner_text()
    context.close()


def test_the_sales_page_shows_what_the_tills_logged(browser, server, populated):
    page = sign_in(browser, server, "mia")
    days = sorted(populated.figures.days)
    page.goto(f"{server.url}/sales?group=till&from={days[0]}&to={days[-1]}")
    for device in ("t1", "t2"):
        cell = page.locator(f"#sales tr[data-key='{device}'] td[data-gross]")
        assert (
            int(cell.get_attribute("data-gross"))
            == (populated.figures.per_device[device]["gross_minor"])
        )
    assert page.locator("#sales tr[data-key='t3']").count() == 0
    assert page.locator("svg.chart").count() == 2  # takings per till, top items
    page.context.close()


def test_another_tenants_url_is_refused(browser, server):
    page = sign_in(browser, server, "mia")
    response = page.goto(server.url + "/sales?tenant=other")
    assert response.status == 403
    assert "outside your scope" in page.locator(".error").inner_text()
    response = page.goto(server.url + "/receipts/t3/1")
    assert response.status == 403
    page.context.close()


def test_a_form_without_its_csrf_token_is_refused(browser, server):
    page = sign_in(browser, server, "mia")
    page.goto(server.url + "/stock")
    form = page.locator("form[action='/stock/count']").first
    form.locator("input[name=qty]").fill("5")
    form.locator("input[name=note]").fill("forged")
    form.locator("input[name=csrf]").evaluate("e => e.remove()")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "CSRF" in page.locator(".error").inner_text()
    page.goto(server.url + "/stock")
    assert page.locator("#open-flags tr.flag").count() > 0  # nothing was resolved
    page.context.close()


def test_a_negative_stock_flag_is_resolved_with_a_count_and_a_note(browser, server, populated):
    from edge.store import Store

    page = sign_in(browser, server, "mia")
    page.goto(server.url + "/stock")
    form = page.locator("form[action='/stock/count']").first
    sku = form.locator("input[name=sku]").get_attribute("value")
    form.locator("input[name=qty]").fill("4")
    form.locator("input[name=note]").fill("counted at close")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert f"Count of {sku} recorded" in page.locator(".ok").inner_text()
    assert page.locator(f"#open-flags tr[data-sku='{sku}']").count() == 0
    assert (
        page.locator(f"#levels tr[data-sku='{sku}'] td[data-qty]").get_attribute("data-qty") == "4"
    )
    store = Store.open(populated.db)
    try:
        assert store.stock_qty("demo", sku) == 4
    finally:
        store.close()
    page.context.close()


def test_a_pasted_receipt_is_verified(browser, server, populated):
    with Till.open(populated.folders["t1"]) as till:
        payload = receipt_qr_payload(till, till.find_sale(1))
    page = sign_in(browser, server, "mia")
    page.goto(server.url + "/verify")
    page.fill("textarea[name=payload]", payload)
    page.click("form[action='/verify'] button[type=submit]")
    verdict = page.locator(".verdict").inner_text()
    assert "Genuine" in verdict and "as the region stored it" in verdict
    page.context.close()


def test_the_fleet_page_flags_the_till_whose_agent_was_killed(
    browser, server, region_running, console_db
):
    page = sign_in(browser, server, "tess")

    def row_of(device):
        page.goto(server.url + "/fleet")
        return page.locator(f"#fleet tr[data-device='{device}']")

    def both_reporting():
        return all("flag" not in (row_of(d).get_attribute("class") or "") for d in ("t1", "t2"))

    wait_for(both_reporting, 60, "both agents' health on the fleet page", interval=1)
    assert "never reported" in row_of("t3").inner_text()
    region_running["t1"].kill()  # SIGKILL: no goodbye, the till just goes quiet

    def t1_flagged():
        return "silent for" in row_of("t1").inner_text()

    wait_for(t1_flagged, 60, "the killed till flagged silent", interval=1)
    silent = row_of("t1")
    assert "flag" in silent.get_attribute("class")
    healthy = row_of("t2")
    assert "silent" not in healthy.inner_text() and "flag" not in (
        healthy.get_attribute("class") or ""
    )
    assert healthy.locator("td").nth(2).inner_text() != "?"  # the version it reported
    if os.environ.get("TILLBOX_SCREENSHOTS") and console_db.startswith("sqlite"):
        for width, height in ((1280, 800), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(server.url + "/fleet")
            page.screenshot(path=str(SHOTS / f"fleet-{width}.png"), full_page=True)
    page.context.close()
