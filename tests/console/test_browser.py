"""The console in a real browser: Debian's Chromium driven by Playwright against
``tillbox edge web`` on a free port, over a region whose tills sold (SQLite and
PostgreSQL). Each role signs in through the form; the numbers on the pages are checked
against the tills' own logs; another tenant's URL is refused; a form without its CSRF
token is refused; a stock flag is resolved; the fleet flags a silent till.

With ``TILLBOX_SCREENSHOTS=1`` the first test also saves every page at desktop (1280) and
phone (390) width to docs/console/ (the committed screenshots come from it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.formats.receipt import receipt_qr_payload
from appliance.till import Till
from systest.console import PASSWORD, ConsoleServer, put_telemetry_until_agent_does

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


@pytest.fixture(scope="module")
def server(populated, region, tmp_path_factory):
    now = int(time.time() * 1000)
    # t1 reported three hours ago and went quiet; t2 is healthy but low on paper
    put_telemetry_until_agent_does(
        populated.db, "t1", "demo", now - 3 * 3600_000, now - 3 * 3600_000
    )
    put_telemetry_until_agent_does(
        populated.db, "t2", "demo", now, now + 1200, printer_paper="low", queued_events=3
    )
    console = ConsoleServer(populated.db, tmp_path_factory.mktemp("web"), region.key_path).start()
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
    "tess": ["/fleet"],
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


def test_the_fleet_page_flags_a_till_that_went_silent(browser, server):
    page = sign_in(browser, server, "tess")
    page.goto(server.url + "/fleet")
    silent = page.locator("#fleet tr[data-device='t1']")
    assert "flag" in silent.get_attribute("class")
    assert "silent for 3 h" in silent.inner_text()
    healthy = page.locator("#fleet tr[data-device='t2']")
    assert "paper low" in healthy.inner_text() and "silent" not in healthy.inner_text()
    assert "never reported" in page.locator("#fleet tr[data-device='t3']").inner_text()
    page.context.close()
