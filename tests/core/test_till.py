import random

import pytest

from appliance import projections, sync_state
from appliance.errors import NotFound, RuleViolation, TillError
from appliance.pricing import CartLine
from appliance.till import Till


def sell(till, *items, method="cash", **kw):
    return till.sell([CartLine(s, q) for s, q in items], method, **kw)


def events_count(till) -> int:
    return till.log.last()[0]


def test_sale_is_recorded_with_everything_a_receipt_needs(till):
    result = sell(till, ("MUG-01", 2), ("HONEY", 3), tendered=5000)
    p = result.payload
    assert result.event.type == "sale.completed"
    assert p["receipt_no"] == 1 and p["shift_no"] == 1
    assert p["payment"] == {
        "method": "cash",
        "due_minor": 4050,
        "rounding_minor": 0,
        "tendered_minor": 5000,
        "change_minor": 950,
    }
    assert p["promotions"][0]["id"] == "HONEY3"
    assert till.stock()["MUG-01"] == 38 and till.stock()["HONEY"] == 57


def test_idempotency_key_never_records_twice(till):
    first = sell(till, ("CAFE", 1), idempotency_key="cart-42")
    again = sell(till, ("CAFE", 1), idempotency_key="cart-42")
    assert again.replayed and again.event.seq == first.event.seq
    assert till.log.conn.execute("SELECT count(*) FROM sales").fetchone()[0] == 1


def test_sale_while_shift_closed_is_refused_and_writes_nothing(data_dir):
    with Till.open(data_dir) as till:
        before = events_count(till)
        with pytest.raises(RuleViolation, match="no shift is open"):
            sell(till, ("CAFE", 1))
        assert events_count(till) == before


def test_short_cash_is_refused(till):
    with pytest.raises(RuleViolation, match="less than"):
        sell(till, ("MUG-01", 1), tendered=1000)


def test_card_limits_per_sale_and_per_device(till, data_dir):
    till.config.update(
        "payment", card_offline_limit_minor=3000, card_offline_device_limit_minor=5000
    )
    with pytest.raises(RuleViolation, match="above the offline card limit"):
        sell(till, ("BOARD-ENG", 1), method="card")
    sell(till, ("TEE-M", 1), method="card")
    sell(till, ("TEE-L", 1), method="card")
    with pytest.raises(RuleViolation, match="unsynced card payments"):
        sell(till, ("TEE-M", 1), method="card")
    # once the region has acked those sales, the exposure drops and card works again
    sync_state.write(data_dir.sync_dir, sync_state.SyncState(acked_seq=till.log.last()[0]))
    assert till.card_exposure_minor() == 0
    sell(till, ("TEE-M", 1), method="card")


def test_refund_partial_then_rest_adds_up_exactly(till):
    sale = sell(till, ("HONEY", 3))  # bundle: 16.50 for three
    first = till.refund(sale.payload["sale_id"], [("HONEY", 1)])
    rest = till.refund(str(sale.payload["receipt_no"]))
    refunded = first.event.payload["total_minor"] + rest.event.payload["total_minor"]
    assert refunded == sale.payload["total_minor"] == 1650
    assert first.event.payload["receipt_no"] == 2 and rest.event.payload["receipt_no"] == 3
    tax = sum(r.event.payload["taxes"][0]["tax_minor"] for r in (first, rest))
    assert tax == sale.payload["tax_minor"]
    with pytest.raises(RuleViolation, match="nothing left to refund"):
        till.refund(sale.payload["sale_id"])
    assert till.stock()["HONEY"] == 60


def test_refund_more_than_sold_is_refused_and_writes_nothing(till):
    sale = sell(till, ("MUG-01", 2))
    till.refund(sale.payload["sale_id"], [("MUG-01", 1)])
    before = events_count(till)
    with pytest.raises(RuleViolation, match="only 1 of 2 sold are left"):
        till.refund(sale.payload["sale_id"], [("MUG-01", 2)])
    with pytest.raises(RuleViolation, match="not on receipt"):
        till.refund(sale.payload["sale_id"], [("TEE-M", 1)])
    with pytest.raises(NotFound, match="no sale 999"):
        till.refund("999")
    with pytest.raises(NotFound):
        till.refund("no-such-sale-id")
    assert events_count(till) == before


def test_personalised_goods_are_not_refundable(till):
    sale = till.sell([CartLine("KEYRING-ENG", 1, {"text": "Ada"})], "cash")
    with pytest.raises(RuleViolation, match="personalised"):
        till.refund(sale.payload["sale_id"], [("KEYRING-ENG", 1)])
    with pytest.raises(RuleViolation, match="nothing left"):
        till.refund(sale.payload["sale_id"])


def test_z_report_totals_per_rate_and_payment(till):
    sell(till, ("MUG-01", 1), ("CAFE", 2))
    card = sell(till, ("TEE-M", 1), method="card")
    till.refund(card.payload["sale_id"])
    closed = till.close_shift()
    z = closed.payload["z_report"]
    assert z["sales_count"] == 2 and z["refunds_count"] == 1
    assert {t["rate"]: t["gross_minor"] for t in z["taxes"]} == {"reduced": 560, "standard": 1200}
    assert {p["method"]: p["total_minor"] for p in z["payments"]} == {"cash": 1760, "card": 0}
    assert z["takings_minor"] == 1760
    with pytest.raises(RuleViolation, match="nothing to close"):
        till.close_shift()
    assert till.open_shift().payload["shift_no"] == 2


def test_second_open_shift_is_refused(till):
    with pytest.raises(RuleViolation, match="already open"):
        till.open_shift()


def test_core_event_types_cannot_be_forged_through_record(till):
    with pytest.raises(RuleViolation):
        till.record("sale.completed", {})
    with pytest.raises(RuleViolation):
        till.record("Not A Type", {})
    with pytest.raises(RuleViolation, match="floats are not allowed"):
        till.record("device.fault", {"temp": 21.5})
    assert till.record("device.fault", {"device": "printer"}).type == "device.fault"


def test_receipt_status_feeds_the_reprint_queue(till):
    sale = sell(till, ("CAFE", 1))
    n = sale.payload["receipt_no"]
    till.record("receipt.failed", {"receipt_no": n, "reason": "paper out"})
    assert till.reprint_queue() == [n]
    till.record("receipt.printed", {"receipt_no": n})
    assert till.reprint_queue() == []


def test_init_refuses_bad_ids_and_existing_tills(tmp_path, data_dir):
    from appliance.datadir import DataDir

    with pytest.raises(TillError, match="device id"):
        Till.init(DataDir(tmp_path / "x"), "has space")
    with pytest.raises(TillError, match="already holds a till"):
        Till.init(data_dir, "again")
    key = data_dir.private_key_path
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700


def test_projections_rebuilt_from_the_log_match_after_random_trading(till):
    rng = random.Random(7)
    skus = sorted(till.catalog().items)
    sales = []
    for step in range(150):
        action = rng.random()
        try:
            if action < 0.6:
                cart = [
                    CartLine(rng.choice(skus), rng.randint(1, 4)) for _ in range(rng.randint(1, 3))
                ]
                sales.append(
                    till.sell(
                        cart,
                        rng.choice(["cash", "card"]),
                        promo_code=rng.choice([None, "MARKET10", "FIVEOFF"]),
                    )
                )
            elif action < 0.85 and sales:
                sale = rng.choice(sales).payload
                line = rng.choice(sale["lines"])
                till.refund(sale["sale_id"], [(line["sku"], rng.randint(1, 2))])
            elif action < 0.95:
                till.close_shift()
                till.open_shift()
            else:
                till.record("receipt.failed", {"receipt_no": step, "reason": "x"})
        except RuleViolation:
            pass  # refused requests are part of trading; they must not leave traces
    assert len(sales) > 50
    assert projections.snapshot(till.log.conn) == projections.rebuild(till.log.conn)
    assert till.verify().ok


def test_interrupted_init_says_how_to_recover(data_dir):
    data_dir.config_path.unlink()  # as if the power went before init wrote its config
    with pytest.raises(TillError, match="was interrupted"):
        Till.open(data_dir)
