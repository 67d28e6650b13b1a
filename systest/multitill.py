"""Helpers for tests of several tills at one stall (issue 15), in-process and on disk.

* :func:`make_tills`: demo tills of one tenant, each with its own log and key, a shift
  open and the region's public key in ``[sync] region_public_key``;
* :func:`roster_of`, :func:`scheduled`: the region's lists as the tests want them;
* :func:`deliver`: sign a list with the region key and apply it to a till the way a USB
  file or the sync agent would (``appliance.region.apply_signed``);
* :func:`sell_at`, :func:`refund_receipt_at`: sell at one till and keep its receipt QR,
  refund that receipt (scanned) at another;
* :func:`ingest_all`: push every till's log into an in-process ``edge.ingest.Ingestor``
  (real signed segments, real SQL), as the agents would once the network is back;
* :class:`Stall`: tills with their own agent processes, each behind its own fault
  proxy, over a real broker and edge (the fault tests, tests/sync/test_multitill.py).

The oracles of reconciliation and the intents' exactly-once check are in
:mod:`systest.intents`.

Importing this module needs no pytest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from appliance import refund_scan, region
from appliance.datadir import DataDir
from appliance.formats import receipt as receipt_sig
from appliance.formats import region as fmt
from appliance.formats.chain import Event
from appliance.keys import load_verify_key
from appliance.pricing import CartLine
from appliance.till import Till
from systest.sync import Region

DAY_MS = 24 * 3600 * 1000


def make_tills(
    root: Path, region_keys: Region, devices: Sequence[str] = ("a1", "a2"), tenant: str = "demo"
) -> list[DataDir]:
    folders = []
    for device in devices:
        folder = DataDir(root / device)
        with Till.init(folder, device, demo=True, tenant=tenant) as till:
            till.open_shift()
        config = folder.load_config()
        config.update("sync", region_public_key=region_keys.pub_hex)
        folder.config_path.write_text(tomli_w.dumps(config.data))
        folders.append(folder)
    return folders


def roster_of(folders: Iterable[DataDir], stalls: dict[str, str] | None = None) -> fmt.Roster:
    """The roster of these tills (their real public keys), at ``stalls[device]`` or "s1"."""
    devices = []
    for folder in folders:
        device = folder.load_config().device_id
        key = load_verify_key(folder.public_key_path).encode().hex()
        devices.append(
            {"device_id": device, "public_key": key, "stall": (stalls or {}).get(device, "s1")}
        )
    value = fmt.Roster.from_json({"devices": devices})
    return value


def scheduled(
    event_id: str,
    start_ms: int,
    end_ms: int,
    tax_profile: str = "eu-market",
    **fields: Any,
) -> dict[str, Any]:
    """One event of a schedule, with plausible values for what the test does not care about."""
    return {
        "id": event_id,
        "name": fields.pop("name", f"Event {event_id}"),
        "address": fields.pop("address", "Riverside Market, Quay Street 1"),
        "lat_e7": fields.pop("lat_e7", 514_500_000),
        "lon_e7": fields.pop("lon_e7", -25_900_000),
        "start_ms": start_ms,
        "end_ms": end_ms,
        "tax_profile": tax_profile,
        "jurisdiction": fields.pop("jurisdiction", "DE-BE"),
        "permit": fields.pop("permit", f"PERMIT-{event_id}"),
        "promoter": fields.pop("promoter", "pat"),
        **fields,
    }


def schedule_of(*events: dict[str, Any]) -> fmt.Schedule:
    return fmt.Schedule.from_json({"events": list(events)})


def sign(region_keys: Region, value: fmt.RegionData, version: int, tenant: str = "demo") -> bytes:
    return fmt.seal_region_data(region_keys.key, tenant, value, version, 1_767_225_600_000)


def deliver(
    folder: DataDir, region_keys: Region, value: fmt.RegionData, version: int, tenant: str = "demo"
) -> region.Applied:
    """Sign ``value`` and apply it to the till in ``folder`` (checked as a USB file is)."""
    with Till.open(folder) as till:
        return region.apply_signed(till, sign(region_keys, value, version, tenant))


def sell_at(
    folder: DataDir, cart: Sequence[CartLine], method: str = "card"
) -> tuple[dict[str, Any], str]:
    """Sell at the till of ``folder``: (the sale's payload, its receipt QR)."""
    with Till.open(folder) as till:
        sale = till.sell(cart, method)
        return sale.payload, receipt_sig.receipt_qr_payload(till, sale.event)


def refund_receipt_at(
    folder: DataDir, qr: str, items: Sequence[tuple[str, int]] | None = None
) -> Event:
    """Refund the scanned receipt ``qr`` at the till of ``folder``: its ``refund.issued``."""
    with Till.open(folder) as till:
        return refund_scan.refund_by_receipt(till, qr, items).event


def ingest_all(edge: Any, folders: Iterable[DataDir], tenant: str = "demo") -> None:
    """Push what every till logged since the edge's tip (``systest.reports.push``)."""
    from systest.reports import push

    for folder in folders:
        outcomes = push(edge, folder, tenant)
        assert all(o == "stored" for o in outcomes), outcomes


# -- a stall of tills over the real broker, each behind its own fault proxy -------------
class Stall:
    """Tills of one stall, each with its own log, key and ``tillbox sync`` agent process
    connected through its own :class:`sync_agent.faultproxy.FaultProxy` to one broker,
    and one ``tillbox edge serve`` worker. :meth:`cut` takes tills offline (their agent's
    connection dropped, new ones refused), :meth:`heal` brings them back; the tills trade
    in this process all the while, as a cashier would. The broker needs the device
    identities (``systest.sync.DEVICES``) and the publisher."""

    def __init__(
        self,
        root: Path,
        broker: Any,
        db: str,
        region_keys: Region,
        devices: Sequence[str] = ("t1", "t2"),
        stall: str = "s1",
        edge_args: Sequence[str] = (),
    ) -> None:
        self.root, self.broker, self.db, self.region = root, broker, db, region_keys
        self.devices, self.stall = tuple(devices), stall
        self.edge_args = tuple(edge_args)  # more `tillbox edge serve` options
        self.tills: dict[str, DataDir] = {}
        self.proxies: dict[str, Any] = {}
        self.agents: dict[str, Any] = {}
        self.edge: Any = None

    def start(self) -> Stall:
        from edge.store import Store
        from sync_agent.faultproxy import FaultProxy
        from systest.reports import set_stall
        from systest.sync import (
            EDGE_USER,
            agent_proc,
            edge_proc,
            edge_ready,
            enroll,
            make_till,
            wait_for,
        )

        for device in self.devices:
            self.tills[device] = make_till(self.root, device, self.region)
        enroll(self.db, *self.tills.values())
        store = Store.open(self.db)
        try:
            for device in self.devices:
                set_stall(store, device, self.stall)
        finally:
            store.close()
        self.edge = edge_proc(
            self.root, self.db, self.broker.url, self.region, EDGE_USER, *self.edge_args
        ).start()
        wait_for(lambda: edge_ready(self.edge), 20, "the edge to subscribe")
        for device, folder in self.tills.items():
            self.proxies[device] = FaultProxy(self.broker.port).start()
            self.agents[device] = agent_proc(folder, self.proxies[device].url).start()
        return self

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        for proxy in self.proxies.values():
            proxy.close()
        if self.edge is not None:
            self.edge.stop()

    def __enter__(self) -> Stall:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def folders(self) -> list[DataDir]:
        return list(self.tills.values())

    # -- the network ------------------------------------------------------------------------
    def cut(self, *devices: str) -> None:
        """These tills lose the network: connections closed, new ones refused."""
        for device in devices or self.devices:
            proxy = self.proxies[device]
            proxy.refuse(True)
            proxy.drop()

    def heal(self, *devices: str) -> None:
        for device in devices or self.devices:
            self.proxies[device].heal()

    def online(self, device: str) -> bool:
        state = self._state(device)
        return bool(state and state.get("online"))

    def drained(self, device: str) -> bool:
        state = self._state(device)
        return bool(
            state
            and state.get("running")
            and state["queued_events"] == 0
            and state["acked_seq"] == state["last_seq"]
            and state["last_seq"] >= self.last_seq(device)
        )

    def last_seq(self, device: str) -> int:
        with Till.open(self.tills[device]) as till:
            return till.log.last()[0]

    def _state(self, device: str) -> dict | None:
        import json

        try:
            return json.loads((self.tills[device].sync_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None

    def wait_offline(self, *devices: str, timeout: float = 20) -> None:
        from systest.sync import wait_for

        for device in devices or self.devices:
            wait_for(lambda d=device: not self.online(d), timeout, f"{device} to be offline")

    def wait_synced(self, *devices: str, timeout: float = 60) -> None:
        """Every event these tills logged is acked by the region."""
        from systest.sync import wait_for

        for device in devices or self.devices:
            wait_for(lambda d=device: self.drained(d), timeout, f"{device} to drain")

    # -- the region's lists -----------------------------------------------------------------
    def publish(self, *args: str) -> dict:
        """``tillbox edge ARGS --broker ...`` as the region's publisher (retained)."""
        import json

        from systest.sync import PUBLISHER_PASSWORD, PUBLISHER_USER, run_tillbox

        pw = self.root / "publisher-pw"
        pw.write_text(PUBLISHER_PASSWORD)
        out = run_tillbox(
            "edge", *args, "--db", self.db, "--key", str(self.region.key_path), "--tenant",
            "demo", "--broker", self.broker.url, "--username", PUBLISHER_USER,
            "--password-file", str(pw), "--json",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def wait_list(self, kind: str, version: int, *devices: str, timeout: float = 20) -> None:
        """These tills hold ``kind`` at ``version`` or above (their agents applied it)."""
        from systest.sync import wait_for

        def holds(device: str) -> bool:
            with Till.open(self.tills[device]) as till:
                return region.version(till.log.conn, kind) >= version

        for device in devices or self.devices:
            wait_for(lambda d=device: holds(d), timeout, f"{device} to apply the {kind}")
