"""The stall's stock at a till: its own log plus the region's signed snapshot of the other
tills' movements (appliance.stallstock): kept only when it is the region's, for this
tenant and this till's stall, and newer; read back verified; never in the log."""

from __future__ import annotations

import pytest

from appliance import stallstock
from appliance.formats import region as fmt
from appliance.pricing import CartLine
from appliance.till import Till
from systest.multitill import deliver, make_tills, roster_of

ISSUED = 1_767_225_600_000


@pytest.fixture
def tills(tmp_path, region):
    folders = make_tills(tmp_path, region, ("a1", "a2", "b1"))
    roster = roster_of(folders, {"a1": "s1", "a2": "s1", "b1": "s2"})
    for folder in folders:
        deliver(folder, region, roster, 1)
    return folders


def snapshot(region, moves: dict[str, dict[str, int]], version=5, stall="s1", tenant="demo"):
    value = fmt.StallStock.from_json(
        {
            "stall": stall,
            "devices": [
                {
                    "device_id": device,
                    "seq": 10,
                    "moves": [{"sku": k, "qty": q} for k, q in m.items()],
                }
                for device, m in moves.items()
            ],
        }
    )
    return fmt.seal_stock(region.key, tenant, value, version, ISSUED + version)


def test_the_stall_stock_is_this_tills_own_plus_the_other_tills_moves(tills, region):
    a1, _a2, _b1 = tills
    with Till.open(a1) as till:
        till.sell([CartLine("MUG-01", 3)], "card")
        assert till.stall_stock("MUG-01") == (37, None)  # never synced: its own count
        before = len(list(till.log.events()))
        # the region's: a1's own entry is ignored (its log has every sale of its own)
        moves = {"a1": {"MUG-01": -3}, "a2": {"MUG-01": -5, "HONEY": 2}}
        assert stallstock.keep(till, snapshot(region, moves)) == "kept"
        qty, synced_ms = till.stall_stock("MUG-01")
        assert (qty, synced_ms) == (40 - 3 - 5, ISSUED + 5)
        assert till.stall_stock("HONEY") == (62, ISSUED + 5)
        assert till.stall_stock("CAFE") is None  # stock not tracked
        assert len(list(till.log.events())) == before  # kept outside the log
        assert (stallstock.path(till).stat().st_mode & 0o777) == 0o600
        # an older or the same version changes nothing
        assert stallstock.keep(till, snapshot(region, {"a2": {"MUG-01": -1}}, 4)) == "unchanged"
        assert till.stall_stock("MUG-01").qty == 32
        # the stall oversold (two tills sold the last ones): shown, never refused
        stallstock.keep(till, snapshot(region, {"a2": {"MUG-01": -40}}, 6))
        assert till.stall_stock("MUG-01").oversold
        till.sell([CartLine("MUG-01", 1)], "card")  # still sells
        assert till.stall_stock("MUG-01") == (40 - 3 - 1 - 40, ISSUED + 6)


def test_only_the_regions_snapshot_of_this_tills_stall_and_tenant_is_kept(tills, region):
    a1, _a2, b1 = tills
    from nacl.signing import SigningKey

    from systest.sync import Region

    forger = Region(SigningKey.generate(), region.key_path, region.pub_path)
    cases = [
        (snapshot(forger, {"a2": {"MUG-01": -5}}), "bad_signature"),
        (snapshot(region, {"a2": {"MUG-01": -5}}, tenant="other"), "wrong_tenant"),
        (snapshot(region, {"b1": {"MUG-01": -5}}, stall="s2"), "other_stall"),
        (b"TBRU\x01" + b"x" * (fmt.STOCK_MAX_BYTES + 1), "oversize"),
    ]
    with Till.open(a1) as till:
        for data, reason in cases:
            with pytest.raises(stallstock.Refused) as err:
                stallstock.keep(till, data)
            assert err.value.reason == reason
        assert till.stall_stock("MUG-01") == (40, None)
    with Till.open(b1) as till:  # b1 is at s2: that one is its own
        assert stallstock.keep(till, snapshot(region, {"x9": {"MUG-01": -5}}, stall="s2")) == "kept"
        assert till.stall_stock("MUG-01") == (35, ISSUED + 5)


def test_a_tampered_file_or_a_move_to_another_stall_is_no_snapshot(tills, region):
    a1, a2, b1 = tills
    with Till.open(a1) as till:
        stallstock.keep(till, snapshot(region, {"a2": {"MUG-01": -5}}))
        assert till.stall_stock("MUG-01") == (35, ISSUED + 5)
        data = bytearray(stallstock.path(till).read_bytes())
        data[30] ^= 1
        stallstock.path(till).write_bytes(bytes(data))
        assert till.stall_stock("MUG-01") == (40, None)  # verified again on every read
        stallstock.keep(till, snapshot(region, {"a2": {"MUG-01": -5}}, 7))
    deliver(a1, region, roster_of([a1, a2, b1], {"a1": "s2", "a2": "s1", "b1": "s2"}), 2)
    with Till.open(a1) as till:  # moved to s2: s1's shelf is not its own any more
        assert till.stall_stock("MUG-01") == (40, None)
