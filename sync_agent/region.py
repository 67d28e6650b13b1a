"""The region's retained updates, as they arrive on ``tillbox/v1/{tenant}/region/{kind}``.

The agent subscribes to ``tillbox/v1/{tenant}/region/+``: one retained, signed TBRU
message per kind (docs/formats.md, section 4). Each is verified with the region key the
till pins (``[sync] region_public_key``) before a byte of it is parsed, then:

* ``catalog``: checked for tenant and kind, applied as ``catalog.applied`` with
  ``source`` ``region`` unless its version is not above the one the agent applied;
* ``schedule``, ``roster``, ``bookings``: handed to :func:`appliance.region.apply_signed`,
  the core's one home of the rules (signature, kind = the topic's, tenant, version above
  the one in the log); applied ones become ``schedule.applied`` / ``roster.applied`` /
  ``bookings.applied``, which sync up like any event;
* ``release``: the same, with :func:`drivers.update_fetch.offer_checker`: recorded as
  ``update.offered``, or ``update.ignored`` with why (other hardware, not newer, a
  release key the keyring lacks); the agent's fetch thread downloads an offered one;
* anything else (a kind this till does not know yet) is ignored and counted.

An empty retained payload is the region clearing the topic: ignored. A refusal is
logged and counted as ``updates_rejected.<reason>`` (``tillbox sync status``) and never
applied; the till keeps the lists it holds. A log that cannot take the update right now
(``unrecorded``) gets the retained copy again at the next connect.
"""

from __future__ import annotations

import logging

from nacl.signing import VerifyKey

from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.formats import region as fmt
from appliance.formats import wire
from sync_agent.store import AgentStore

log = logging.getLogger("tillbox.sync")

CATALOG = "catalog"
KINDS = (CATALOG, *fmt.KINDS)


def version_key(kind: str) -> str:
    """The agent store's key for the version of ``kind`` last applied or found in force."""
    return f"region_{kind}_version"


def handle_update(
    data_dir: DataDir,
    region_key: VerifyKey,
    tenant: str,
    kind: str,
    payload: bytes,
    store: AgentStore,
) -> str:
    """Verify and apply one retained region update of ``kind`` (the topic's last level);
    the outcome: ``applied``, ``unchanged``, ``cleared``, ``ignored`` or
    ``refused:<reason>``. Never raises for bad input."""
    if not payload:
        return "cleared"  # the region cleared the retained message
    if kind == CATALOG:
        return _catalog(data_dir, region_key, tenant, payload, store)
    if kind not in fmt.KINDS:
        store.bump("updates_ignored.unknown_kind")
        log.info("sync region update of unknown kind %r ignored", kind[:32])
        return "ignored"
    from appliance import region
    from appliance.till import Till

    try:
        with Till.open(data_dir) as till:
            check = None
            if kind == fmt.RELEASE:
                from drivers.update_fetch import offer_checker

                check = offer_checker(till)
            applied = region.apply_signed(till, payload, kind, check)
    except region.RegionRefused as exc:
        return _refuse(store, exc.reason, kind, str(exc))
    except TillError as exc:
        # the log cannot take it now (busy, disk full): the retained copy comes again
        return _refuse(store, "unrecorded", kind, str(exc))
    store.put(version_key(kind), str(max(applied.version, applied.previous)))
    if applied.status == "unchanged":
        return "unchanged"  # the retained copy of what is in force, at every connect
    if applied.status == "ignored":
        store.bump("updates_ignored.release")
        log.info("sync region release notice version=%d ignored (logged)", applied.version)
        return "ignored"
    store.bump("updates_applied")
    assert applied.event is not None
    log.info("sync region %s applied version=%d seq=%d", kind, applied.version, applied.event.seq)
    return "applied"


def handle_stock(data_dir: DataDir, payload: bytes, store: AgentStore) -> str:
    """Keep the region's snapshot of this till's stall's stock
    (``tillbox/v1/{tenant}/region/stock/{stall}``; :mod:`appliance.stallstock` holds
    the rules): ``kept``, ``unchanged``, ``cleared``, ``ignored`` (another stall's) or
    ``refused:<reason>``. Never raises for bad input."""
    if not payload:
        return "cleared"
    from appliance import stallstock
    from appliance.till import Till

    try:
        with Till.open(data_dir) as till:
            outcome = stallstock.keep(till, payload)
    except stallstock.Refused as exc:
        if exc.reason == "other_stall":
            return "ignored"  # the tenant's other stalls' snapshots come here too
        store.bump(f"stock_rejected.{exc.reason}")
        log.warning("sync stock snapshot rejected reason=%s detail=%s", exc.reason, exc)
        return f"refused:{exc.reason}"
    except TillError as exc:
        store.bump("stock_rejected.unrecorded")
        log.warning("sync stock snapshot not kept: %s", exc)
        return "refused:unrecorded"
    if outcome == "kept":
        store.bump("stock_kept")
    return outcome


def _catalog(
    data_dir: DataDir, region_key: VerifyKey, tenant: str, payload: bytes, store: AgentStore
) -> str:
    try:
        update = wire.open_update(payload, region_key)
    except wire.WireError as exc:
        return _refuse(store, exc.reason, CATALOG, str(exc))
    if update.kind != CATALOG:
        return _refuse(store, "wrong_kind", CATALOG, f"a {str(update.kind)[:20]!r} update")
    if update.tenant != tenant:
        return _refuse(store, "wrong_tenant", CATALOG, f"for tenant {update.tenant[:64]!r}")
    if update.version <= int(store.get(version_key(CATALOG), "0")):
        return "unchanged"  # the retained copy of what we already applied
    from appliance.till import Till

    try:
        with Till.open(data_dir) as till:
            event = till.apply_catalog(update.data, source="region")
    except TillError as exc:
        return _refuse(store, "invalid", CATALOG, f"version {update.version}: {exc}")
    store.put(version_key(CATALOG), str(update.version))
    store.bump("updates_applied")
    log.info("sync region catalog applied version=%d seq=%d", update.version, event.seq)
    return "applied"


def _refuse(store: AgentStore, reason: str, kind: str, detail: str) -> str:
    store.bump(f"updates_rejected.{reason}")
    log.warning("sync region %s update rejected reason=%s detail=%s", kind, reason, detail)
    return f"refused:{reason}"
