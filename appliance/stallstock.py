"""The stall's stock as this till knows it: its own log, plus what the region last told it
of the other tills of its stall.

The tills of one stall sell from one shelf. A till's own stock projection starts from
the catalog's ``initial_stock`` (the stall's stock) and takes out only its own sales
(and paid bookings handed over; refunds put back). While online, the region sends the
stall a signed snapshot of every till's movements as stored (kind ``stock``, retained on
``tillbox/v1/{tenant}/region/stock/{stall}``, built after ingest by the edge:
``edge/stallstock.py``). So the stall's stock is::

    qty = this till's own stock (everything it logged, up to now)
        + the other tills' movements in the snapshot (up to the region's seq of each)

and ``synced_ms`` is when the region built the snapshot. What the other tills sold after
that (or while offline) is not in it: the shelf may hold less, which is why the kiosk
says when it last synced. The count may go below zero (the stall oversold): shown and
flagged, never a reason to refuse a sale.

The snapshot is not a business intent and changes every few seconds while the stall
trades, so it stays out of the log: the signed message is kept as it came in
``DIR/region/stock.tbru`` (0600, written crash-safely) and verified again on read.
:func:`keep` holds the rules (region signature first, kind, tenant, the till's stall,
a newer version); the sync agent calls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from appliance import queries
from appliance.boundedio import read_bounded
from appliance.errors import TillError
from appliance.formats import region as fmt
from appliance.formats import wire
from appliance.fsutil import atomic_write
from appliance.region import region_key

if TYPE_CHECKING:
    from appliance.till import Till


class Refused(TillError):
    """A stock snapshot this till does not keep; ``reason`` is the counted word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StallStock(NamedTuple):
    """One SKU's stock at the till's stall: ``qty`` units as of the region's snapshot at
    ``synced_ms`` (None: never synced, this till's own count only) plus this till's own
    movements since. Unpacks as ``(qty, synced_ms)``."""

    qty: int
    synced_ms: int | None

    @property
    def oversold(self) -> bool:
        return self.qty < 0


def path(till: Till) -> Path:
    return till.data_dir.root / "region" / "stock.tbru"


def _read(till: Till) -> tuple[wire.RegionUpdate, fmt.StallStock] | None:
    """The kept snapshot, verified again; None when there is none or it does not verify."""
    where = path(till)
    if not where.exists():
        return None
    try:
        data = read_bounded(where, fmt.STOCK_MAX_BYTES, "the stall's stock snapshot")
        return fmt.open_stock(data, region_key(till))
    except (TillError, wire.WireError):
        return None


def keep(till: Till, data: bytes) -> str:
    """Keep a stock snapshot from the region: ``kept`` or ``unchanged``; :class:`Refused`
    (with its reason) when it is not for this till to keep."""
    from appliance.region import region_key

    try:
        update, value = fmt.open_stock(data, region_key(till))
    except wire.WireError as exc:
        raise Refused(exc.reason, f"stock snapshot refused ({exc})") from None
    if update.tenant != till.tenant:
        raise Refused("wrong_tenant", f"a stock snapshot for tenant {update.tenant}")
    stall = till.lists.stall(till.log.conn, till.device_id)
    if not stall or value.stall != stall:
        # another stall's (the agent hears the tenant's), or this till has none yet
        raise Refused("other_stall", f"a stock snapshot of stall {value.stall}, not {stall!r}")
    kept = _read(till)
    if kept is not None and kept[1].stall == stall and kept[0].version >= update.version:
        return "unchanged"
    where = path(till)
    where.parent.mkdir(mode=0o700, exist_ok=True)
    atomic_write(where, data, mode=0o600)
    return "kept"


def stall_stock(till: Till, sku: str) -> StallStock | None:
    """``sku``'s stock at the till's stall (see the module's rule); None when this till
    does not track the SKU's stock."""
    return stall_stocks(till, (sku,)).get(sku)


def stall_stocks(till: Till, skus: Iterable[str] | None = None) -> dict[str, StallStock]:
    """The stall's stock of every tracked SKU (or of ``skus``), with one read of the
    log's stock and one check of the kept snapshot (the kiosk's product grid asks for
    all of them every few seconds)."""
    own = queries.stock(till.log)
    wanted = own if skus is None else {s: own[s] for s in skus if s in own}
    kept = _read(till)
    if kept is not None and kept[1].stall != till.lists.stall(till.log.conn, till.device_id):
        kept = None  # the till moved stall since: not its shelf
    if kept is None:
        return {sku: StallStock(qty, None) for sku, qty in wanted.items()}
    update, value = kept
    return {
        sku: StallStock(qty + value.moved(sku, without=till.device_id), update.issued_wall_ms)
        for sku, qty in wanted.items()
    }
