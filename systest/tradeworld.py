"""A region that traded for three days, for the console's report tests and demos.

:func:`build_world` makes real tills (systest.sync.make_till), trades on chosen days
(systest.reports.trading_at), enrolls them and ingests their signed segments:

* tenant ``demo``: till t1 at event ``fair-1`` sells under ``eu-market`` on day 1 and 2;
  on day 2 the region re-issues its schedule with ``fair-1`` under ``us-fair`` (a
  corrected jurisdiction, version 2, applied by t1 before the afternoon), and t1 then
  refunds a day-1 sale (which must count under ``eu-market``, on day 2); till t2 at
  ``fair-2`` sells under ``ch-festival``; till t3 at ``fair-1`` (``eu-market``) sells on
  day 2 but stays offline until a test pushes it (the late sales of a filed period);
* tenant ``other``: till t9 at ``fair-1`` (``eu-market``), so every report must keep
  tenants apart.

The event and the tax profile of each sale are the till's own: each till gets its
tenant's schedule signed by the region (``appliance.region.apply_signed``, as from a USB
stick or the sync agent) and, its clock being unconfirmed (the log's clock is moved back
to the trading days), the cashier answers which event it trades at
(``Till.choose_event``). The rollups the reports read are the ones ingest keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.till import Till
from edge.ingest import Ingestor
from edge.store import Store
from systest.multitill import deliver, schedule_of, scheduled
from systest.reports import ms_at, push, trading_at
from systest.sync import Region, enroll, make_till

D1, D2, D3 = "2026-11-27", "2026-11-28", "2026-11-29"
AFTER = ms_at("2026-12-01T09:00")  # when the periods are filed
EVENTS = {"t1": "fair-1", "t2": "fair-2", "t3": "fair-1", "t9": "fair-1"}
# Each event's tax profile in the schedule the tills first get (version 1).
PROFILES = {"fair-1": "eu-market", "fair-2": "ch-festival"}
OPEN, CLOSE = ms_at(f"{D1}T00:00"), ms_at("2026-11-30T00:00")  # every event runs D1..D3


def set_profile(folder: DataDir, profile: str) -> None:
    config = folder.load_config()
    config.update("shop", tax_profile=profile)
    folder.config_path.write_text(tomli_w.dumps(config.data))


@dataclass
class World:
    url: str
    store: Store
    edge: Ingestor
    tills: dict[str, DataDir]
    audit_log: list[tuple[str, str, str]] = field(default_factory=list)

    def audit(self, user: str, action: str, detail: str) -> None:
        self.audit_log.append((user, action, detail))

    def push(self, *devices: str) -> None:
        """Ingest what the tills logged since the edge's tip (ingest keeps the rollups)."""
        for device in devices:
            tenant = "other" if device == "t9" else "demo"
            statuses = push(self.edge, self.tills[device], tenant=tenant)
            assert statuses and set(statuses) == {"stored"}, statuses

    def folders(self, *devices: str) -> list[DataDir]:
        return [self.tills[d] for d in devices]


def attend(
    folder: DataDir, region: Region, event_id: str, version: int, profile: str | None = None
) -> None:
    """Give the till its tenant's schedule (signed by the region, ``version``; the event
    under ``profile`` or its usual one) and answer the till's question with ``event_id``."""
    tenant = folder.load_config().section("device")["tenant"]
    events = [
        scheduled(e, OPEN, CLOSE, profile if e == event_id and profile else p, name=f"Fair {e}")
        for e, p in sorted(PROFILES.items())
    ]
    deliver(folder, region, schedule_of(*events), version, tenant)
    with Till.open(folder) as till:
        till.choose_event(event_id)
        assert till.current_event().event_id == event_id


def _trade(tills: dict[str, DataDir], region: Region) -> None:
    with trading_at(f"{D1}T08:00"):
        for device, folder in tills.items():
            attend(folder, region, EVENTS[device], 1)
    mug, honey, cafe = CartLine("MUG-01", 1), CartLine("HONEY", 3), CartLine("CAFE", 2)
    tee, card, brat = CartLine("TEE-M", 1), CartLine("POSTCARD", 4), CartLine("BRATW", 2)
    with Till.open(tills["t1"]) as t1:
        with trading_at(f"{D1}T09:30"):
            first = t1.sell([mug, honey], "cash")
            t1.sell([tee], "card", promo_code="MARKET10")
            t1.sell([cafe, card], "cash")
        with trading_at(f"{D2}T10:05"):
            t1.sell([brat], "cash", promo_code="MARKET10")
            t1.sell([honey, mug], "card")
    with trading_at(f"{D2}T14:00"):
        attend(tills["t1"], region, "fair-1", 2, "us-fair")
    with Till.open(tills["t1"]) as t1:
        with trading_at(f"{D2}T14:40"):
            second = t1.sell([tee, cafe], "cash")
            t1.sell([card], "cash", promo_code="FIVEOFF")
            t1.refund(first.payload["sale_id"])  # a day-1 eu-market sale, refunded on day 2
        with trading_at(f"{D3}T16:20"):
            t1.sell([mug], "card")
            t1.refund(second.payload["sale_id"], [("CAFE", 1)])
    with Till.open(tills["t2"]) as t2:
        with trading_at(f"{D1}T11:00"):
            t2.sell([honey], "cash")
            t2.sell([mug, brat], "cash", promo_code="MARKET10")
        with trading_at(f"{D3}T12:00"):
            gone = t2.sell([tee], "card")
            t2.refund(gone.payload["sale_id"])
    with Till.open(tills["t9"]) as t9:
        with trading_at(f"{D2}T10:30"):
            t9.sell([mug, mug, tee], "cash")
            t9.sell([honey], "cash", promo_code="MARKET10")
    with Till.open(tills["t3"]) as t3:  # offline: a test pushes it after filing
        with trading_at(f"{D2}T13:15"):
            t3.sell([tee, honey], "cash")
            late = t3.sell([mug], "card", promo_code="MARKET10")
        with trading_at(f"{D2}T17:45"):
            t3.refund(late.payload["sale_id"])
        with trading_at(f"{D3}T09:00"):
            t3.sell([cafe], "cash")


def build_world(root: Path, url: str, region: Region) -> World:
    """The three days' trade on the edge database at ``url`` (t3 not yet pushed)."""
    tills = {}
    for device, profile in (
        ("t1", "eu-market"),
        ("t2", "ch-festival"),
        ("t3", "eu-market"),
        ("t9", "eu-market"),
    ):
        tenant = "other" if device == "t9" else "demo"
        tills[device] = make_till(root, device, region, tenant=tenant)
        set_profile(tills[device], profile)
    _trade(tills, region)
    enroll(url, *tills.values())
    store = Store.open(url)
    w = World(url, store, Ingestor(store, region.key), tills)
    w.push("t1", "t2", "t9")
    return w
