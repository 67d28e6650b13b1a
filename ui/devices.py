"""The kiosk's one seam to the hardware: device calls on worker threads, results on the UI thread.

Screens never touch a driver. They ask the :class:`DeviceHub` ("print this sale",
"run this engraving", "how are the devices?") and get a callback on the UI thread
(``post`` is ``Clock.schedule_once`` in the app, a plain queue in tests). Each worker
thread opens its own :class:`~appliance.till.Till` on first use, because an SQLite
connection belongs to the thread that made it; the log takes one writer at a time,
so the UI's sale commit and a worker's ``receipt.printed`` never fork the chain.

The drivers package (``drivers.devices.open_devices``) moves the bytes, the core's
services (``appliance.services``) decide what to print and record the outcome; this
module only decides which thread they run on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.datadir import DataDir
from appliance.errors import TillError

if TYPE_CHECKING:
    from appliance.devices import (
        PrintDocument,
        Printer,
        PrinterStatus,
        ToolpathPlan,
        WorkAreaShape,
    )
    from appliance.formats.chain import Event
    from appliance.services.printing import PrintOutcome
    from appliance.till import Till

log = logging.getLogger("tillbox.ui.devices")

Post = Callable[[Callable[[], None]], None]


@dataclass
class PrintReport:
    """What the Receipt screen shows after a print attempt."""

    ok: bool
    receipt_no: int
    message: str
    preview: str  # the receipt as printed (the simulator's paper) or as laid out
    handed_at: float | None = None  # time.perf_counter() when the bytes went to the printer
    queue: list[int] = field(default_factory=list)


class _TimedPrinter:
    """The printer, noting when receipt bytes were handed over (for bench/ui.py)."""

    def __init__(self, printer: Printer) -> None:
        self._printer = printer
        self.url = printer.url
        self.last_send: float | None = None

    @property
    def columns(self) -> int:
        return self._printer.columns

    def compose(self, document: PrintDocument) -> bytes:
        return self._printer.compose(document)

    def send(self, data: bytes) -> None:
        self._printer.send(data)
        self.last_send = time.perf_counter()

    def status(self) -> PrinterStatus:
        return self._printer.status()

    def kick_drawer(self) -> bytes:
        return self._printer.kick_drawer()


class DeviceHub:
    """Owns the devices and the worker threads that talk to them."""

    def __init__(self, data_dir: DataDir, post: Post) -> None:
        from appliance.devices import open_devices

        self.data_dir = data_dir
        self.config = data_dir.load_config()
        self.devices = open_devices(self.config, data_dir)
        self.post = post
        # One thread for the printer and GPIO (ordered: receipt, then drawer), one for the
        # slow polls (engraver/camera state can take seconds), one for the camera and export.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="ui-io")
        self._poll = ThreadPoolExecutor(1, thread_name_prefix="ui-poll")
        self._slow = ThreadPoolExecutor(1, thread_name_prefix="ui-slow")
        self._local = threading.local()
        self._tills: list[Till] = []
        self._lock = threading.Lock()
        self._printer: _TimedPrinter | None = None
        self.closed = False

    # -- plumbing --------------------------------------------------------------------------
    def till(self) -> Till:  # one per worker thread
        till = getattr(self._local, "till", None)
        if till is None:
            from appliance.till import Till

            till = Till.open(self.data_dir)
            self._local.till = till
            with self._lock:
                self._tills.append(till)
        return till

    def printer(self) -> _TimedPrinter:
        if self._printer is None:
            self._printer = _TimedPrinter(self.devices.printer)
        return self._printer

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        work: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        failed: Callable[[str], None] | None = None,
    ) -> Future | None:
        if self.closed:
            return None

        def run() -> None:
            try:
                result = work()
            except TillError as exc:
                message = str(exc)
                if failed:
                    self.post(lambda: failed(message))
                return
            except Exception as exc:
                log.exception("device work failed")
                message = f"{type(exc).__name__}: {exc}"
                if failed:
                    self.post(lambda: failed(message))
                return
            if done:
                self.post(lambda: done(result))

        return pool.submit(run)

    # -- receipts and the drawer -----------------------------------------------------------
    def print_receipt(
        self,
        seq: int,
        done: Callable[[PrintReport], None],
        *,
        reprint: bool = False,
        drawer: bool = False,
    ) -> None:
        """Print the receipt of the sale at ``seq`` (the sale is already durable)."""
        self._submit(
            self._io,
            lambda: self._print(seq, reprint, drawer),
            done,
            lambda msg: done(PrintReport(False, 0, msg, "")),
        )

    def _print(self, seq: int, reprint: bool, drawer: bool) -> PrintReport:
        from appliance.services.drawer import open_drawer
        from appliance.services.printing import print_sale_receipt

        till = self.till()
        event = till.log.event(seq)
        if event is None:
            raise TillError(f"event {seq} is not in the log; restart the kiosk")
        qr = self._qr(till, event)
        printer = self.printer()
        printer.last_send = None
        sim = getattr(self.devices.printer, "simulator", None)
        outcome = print_sale_receipt(till, event, printer, qr, reprint=reprint)
        handed = printer.last_send
        message = outcome.message
        if drawer:
            try:
                open_drawer(till, printer, "sale", event.payload.get("receipt_no"))
            except TillError as exc:
                message += f"; {exc}"
        preview = ""
        if outcome.ok and sim is not None:
            # the simulated paper up to its last cut: this receipt (printing is serialised
            # on this thread, so nothing else was cut in between)
            pieces = sim.receipts()
            preview = pieces[-1].rstrip("\n") if pieces else ""
        if not preview:  # a real printer, or the simulator's first use: as it was laid out
            preview = self.layout_text(till, event, outcome.reprint)
        return PrintReport(
            outcome.ok, outcome.receipt_no, message, preview, handed, till.reprint_queue()
        )

    @staticmethod
    def _qr(till: Till, event: Event) -> str | None:
        from appliance.formats import receipt as receipt_sig

        try:
            return receipt_sig.receipt_qr_payload(till, event)
        except (TillError, OSError, ValueError) as exc:
            log.warning("receipt %s printed without its QR: %s", event.seq, exc)
            return None

    def layout_text(self, till: Till, event: Event, reprint: bool = False) -> str:
        """The receipt as laid out for this printer, as text (when nothing was printed)."""
        from appliance.services.printing import receipt_document

        document = receipt_document(till, event.payload, wall_ms=event.wall_ms, reprint=reprint)
        return self.devices.printer.preview(document)

    def drain_reprints(self, done: Callable[[list[Any], list[int]], None]) -> None:
        def work() -> tuple[list[PrintOutcome], list[int]]:
            from appliance.services.printing import drain_reprint_queue

            till = self.till()
            outcomes = drain_reprint_queue(till, self.printer(), self._qr)
            return outcomes, till.reprint_queue()

        self._submit(self._io, work, lambda r: done(*r), lambda msg: done([msg], []))

    def print_z(self, shift_no: int, done: Callable[[str], None]) -> None:
        """Print a closed shift's Z report (the core's printing service; a failure is
        recorded and queued for ``drain_reprints``); ``done`` gets "" or the reason."""

        def work() -> str:
            from appliance.services.printing import print_z_report, shift_closed_event

            till = self.till()
            outcome = print_z_report(till, shift_closed_event(till, shift_no), self.printer())
            return "" if outcome.ok else outcome.message

        self._submit(self._io, work, done, done)

    # -- status ----------------------------------------------------------------------------
    def poll(self, done: Callable[[dict[str, Any]], None]) -> None:
        """Device states, the sync agent's state and GPIO events, for the status bar."""

        def work() -> dict[str, Any]:
            from appliance.services.power import record_gpio_reports

            till = self.till()
            gpio_events = 0
            if self.devices.configured("gpio"):
                try:
                    gpio_events = record_gpio_reports(till, self.devices.gpio)
                except TillError as exc:
                    log.warning("GPIO events not recorded: %s", exc)
            states = {s.kind: s for s in self.devices.states()}
            return {
                "states": states,
                "sync": till.sync_view(),  # waiting counted from the log, not the agent
                "gpio_events": gpio_events,
                "queue": till.reprint_queue(),
                "exposure_minor": till.card_exposure_minor(),
                "stock": till.stall_stocks(),
            }

        self._submit(self._poll, work, done)

    # -- self-test -------------------------------------------------------------------------
    def selftest(self, done: Callable[[Any], None], failed: Callable[[str], None]) -> None:
        def work() -> Any:
            from compliance.probes import DriversProbes
            from compliance.selftest import run_selftest

            probes = DriversProbes(self.config, self.data_dir)
            probes._devices = self.devices  # share the opened devices: one simulator each
            return run_selftest(self.data_dir, probes, trigger="kiosk")

        self._submit(self._slow, work, done, failed)

    # -- engraving -------------------------------------------------------------------------
    def toolpath(self, text: str, material: str = "wood") -> ToolpathPlan:
        """The toolpath for ``text`` (pure computation, milliseconds: fine on the UI thread)."""
        return self.devices.toolpath(text, material)

    def work_area(self) -> WorkAreaShape:
        return self.devices.work_area()

    def engrave(
        self,
        gcode: list[str],
        estimated_s: float,
        on_progress: Callable[[Any], None],
        on_done: Callable[[Any], None],
        failed: Callable[[str], None],
        started: Callable[[Any], None],
    ) -> None:
        """Start a job; progress and the result come back on the UI thread."""

        def work() -> Any:
            return self.devices.engraver.start_job(
                gcode,
                estimated_s=estimated_s,
                on_progress=lambda p: self.post(lambda: on_progress(p)),
                on_done=lambda r: self.post(lambda: on_done(r)),
            )

        self._submit(self._slow, work, started, failed)

    # -- camera and export -----------------------------------------------------------------
    def scan_receipt(self, done: Callable[[str], None], failed: Callable[[str], None]) -> None:
        """Capture a frame and decode a receipt QR in it, on a worker; ``done`` gets the text.

        Only the decoding happens here; what the text means (a receipt of this till, signed
        with its key, a sale or a refund) is the session's job on the UI thread, the same
        as for a handheld scanner's text.
        """
        self._scan(RECEIPT, done, failed)

    def scan_booking(self, done: Callable[[str], None], failed: Callable[[str], None]) -> None:
        """The same for a booking's QR code (``TBB1*...``); the core checks what it says."""
        self._scan(BOOKING, done, failed)

    def _scan(self, kind: Scan, done: Callable[[str], None], failed: Callable[[str], None]) -> None:
        def work() -> str:
            if not self.devices.configured("camera"):
                raise TillError(
                    f"this till has no camera configured; {kind.instead}, or set "
                    "[hardware] camera in tillbox.toml"
                )
            photo = self.devices.camera.capture(purpose=kind.purpose)
            return decode_qr(photo.data, kind)

        self._submit(self._slow, work, done, failed)

    def export_bundle(
        self,
        out: Any,
        done: Callable[[Any], None],
        failed: Callable[[str], None],
    ) -> None:
        def work() -> Any:
            from compliance.bundle import export_bundle

            return export_bundle(self.data_dir, out)

        self._submit(self._slow, work, done, failed)

    # -- system updates from a USB stick or the region (the technician screen) ------------
    def update_offer(
        self, folder: Path, done: Callable[[Any], None], failed: Callable[[str], None]
    ) -> None:
        """The install the stick in ``folder`` offers (``appliance.services.updates.Offer``),
        or why none: checking a bundle's signature takes a moment, so off the UI thread."""

        def work() -> Any:
            from appliance.services.updates import offer_from_stick
            from appliance.updates import open_updater

            till = self.till()
            return offer_from_stick(till, folder, open_updater(till.config, self.data_dir))

        self._submit(self._slow, work, done, failed)

    def region_offer(self, done: Callable[[Any], None], failed: Callable[[str], None]) -> None:
        """The region's online offer (``appliance.services.updates.RegionOffer``): its
        line, and the install of its downloaded bundle; checking that bundle takes a
        moment too, so off the UI thread."""

        def work() -> Any:
            from appliance.services.updates import region_offer
            from appliance.updates import open_updater

            till = self.till()
            return region_offer(till, lambda: open_updater(till.config, self.data_dir))

        self._submit(self._slow, work, done, failed)

    def install_update(
        self,
        bundle: Path,
        progress: Callable[[int, str], None],
        done: Callable[[Any], None],
        failed: Callable[[str], None],
    ) -> None:
        """Install ``bundle`` (a stick's, or the region's download) as a technician's
        command, through the core's service (its rules: never during an open sale; its
        events: update.started, .installed)."""

        def work() -> Any:
            from appliance.services.updates import forget_download, install
            from appliance.updates import TECHNICIAN, open_updater

            till = self.till()
            result = install(
                till,
                open_updater(till.config, self.data_dir),
                bundle,
                by=TECHNICIAN,
                progress=lambda pct, what: self.post(lambda: progress(pct, what)),
            )
            forget_download(self.data_dir, bundle)
            return result

        self._submit(self._slow, work, done, failed)

    def pending_restart(
        self, done: Callable[[str | None], None], failed: Callable[[str], None]
    ) -> None:
        """The version an installed update waits to start in, or None (the updater's
        status is a D-Bus call on the Pi, so off the UI thread)."""

        def work() -> str | None:
            from appliance.services.updates import awaiting_restart
            from appliance.updates import open_updater

            till = self.till()
            return awaiting_restart(till, open_updater(till.config, self.data_dir))

        self._submit(self._slow, work, done, failed)

    def restart_update(self, done: Callable[[Any], None], failed: Callable[[str], None]) -> None:
        """Restart the till into its installed update, as a technician's command (the
        core's rule: never during an open sale). On the Pi this process ends with it."""

        def work() -> None:
            from appliance.services.updates import restart_now
            from appliance.updates import open_updater

            till = self.till()
            restart_now(till, lambda: open_updater(till.config, self.data_dir))

        self._submit(self._slow, work, done, failed)

    def close(self) -> None:
        self.closed = True
        job = (
            getattr(self.devices.engraver, "job", None)
            if self.devices.configured("engraver") and "engraver" in self.devices._made
            else None
        )
        if job is not None and job.result is None:
            job.cancel()
        for pool in (self._io, self._poll, self._slow):
            pool.shutdown(wait=True, cancel_futures=True)
        self.devices.close()
        with self._lock:
            for till in self._tills:
                try:
                    till.close()
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass


@dataclass(frozen=True)
class Scan:
    """What the camera is held up to, in the cashier's words."""

    purpose: str  # the camera's log line (camera.capture)
    thing: str  # "the receipt"
    instead: str  # what to do without the camera
    prefer: tuple[str, ...]  # the payloads that win when several codes are in view


RECEIPT = Scan("refund scan", "the receipt", "type the receipt number", ("TB2*", "TB1*"))
BOOKING = Scan("booking scan", "the booking", "search by number or name", ("TBB1*",))


def decode_qr(image_bytes: bytes, kind: Scan = RECEIPT) -> str:
    """The text of the QR code in a JPEG/PNG (``appliance.qrimage``); TillError when
    there is none.

    The payload the scan is for wins when several codes are in view (a booking code held
    next to a receipt reads as the booking on the bookings screen, as the receipt on the
    refund screen). A
    code that zxing finds but cannot decode (blurred, creased, half in view) gets its own
    message, so the cashier knows to hold it better rather than that there is nothing there.
    """
    from appliance.qrimage import UnreadableImage, read_receipt_qr

    try:
        found = read_receipt_qr(image_bytes, kind.prefer)
    except UnreadableImage as exc:
        raise TillError(f"the camera's picture could not be read ({exc}); scan again") from None
    if found.text:
        return found.text
    if found.undecodable:
        raise TillError(
            f"a QR code is in view but could not be read; hold {kind.thing} flat, "
            "still and closer to the camera, then scan again"
        )
    raise TillError(
        f"no QR code in view; hold {kind.thing}'s QR code in front of the camera and "
        f"scan again, or {kind.instead}"
    )
