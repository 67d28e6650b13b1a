"""The online update delivery on a till: the region's notice, the download, the install.

The region publishes a signed release notice (``appliance.formats.region``, kind
``release``, retained on ``tillbox/v1/<tenant>/region/release``). The sync agent
applies it through :func:`appliance.region.apply_signed` with :func:`offer_checker`:
a notice for other hardware, for a version not above the running one, or signed by a
release key the keyring does not hold is recorded as ``update.ignored`` with the
reason; any other as ``update.offered``.

:func:`step` is the sync agent's pass over the offer in force (in a thread every
``[updates] download_check_s``):

1. nothing to do when that version is installed or committed already;
2. download the bundle (:mod:`drivers.download`) into ``DIR/updates/downloads/``,
   paused while a sale is open, at ``[updates] download_rate`` bytes/s, bounded and
   hashed by the notice: ``update.downloaded``, or ``update.download_failed`` for a
   file that is not the one the notice names;
3. :func:`install_offered` (root's ``tillbox update apply``, every minute from
   ``tillbox-update-apply.timer``: RAUC is root's only, the agent is not) installs it
   between shifts only (``appliance.updates.check_install_time`` with ``by=schedule``)
   through :func:`appliance.services.updates.install`, which checks the bundle's
   signature, hardware and version again and records ``update.*``; the same pass
   restarts the till into it while no shift is open
   (:func:`appliance.services.updates.restart_for_update`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import saleopen
from appliance.boundedio import read_bounded
from appliance.errors import RuleViolation, TillError
from appliance.formats import region as fmt
from appliance.formats.release import certificates, key_id
from appliance.services import updates as service
from appliance.updates import SCHEDULE, Updater, UpdaterError, offer_problem
from drivers.download import DownloadRefused, fetch
from drivers.updates import open_updater

if TYPE_CHECKING:
    from appliance.services.updates import Till  # the core's, handed on to its services

KEYRING_LIMIT = 64 * 1024


def keyring_ids(path: Path) -> list[str]:
    """The key ids of the release certificates the till trusts."""
    try:
        pem = read_bounded(path, KEYRING_LIMIT, "the release keyring")
    except TillError:
        return []
    try:
        return [key_id(der) for der in certificates(pem)]
    except TillError:
        return []


def offer_checker(till: Till, updater: Updater | None = None) -> Callable[[fmt.ReleaseNotice], str]:
    """What :func:`appliance.region.apply_signed` asks of a release notice on this till."""

    def check(notice: fmt.ReleaseNotice) -> str:
        try:
            status = (updater or open_updater(till.config, till.data_dir)).status()
        except TillError as exc:
            # Not a reason to ignore the release for good (a notice is recorded once per
            # version): nothing is recorded, and the retained notice is taken again at
            # the agent's next connect.
            raise UpdaterError(
                f"the updater cannot say what this till runs ({str(exc)[:200]}); the "
                "region's notice is taken again at the next connect"
            ) from None
        keyring = Path(till.config.section("updates")["keyring"])
        return offer_problem(
            status, notice.version, notice.compatible, notice.key_id, keyring_ids(keyring)
        )

    return check


def downloads_dir(till: Till) -> Path:
    """The core's :func:`appliance.services.updates.downloads_dir` (its one home: the
    kiosk, which cannot import the drivers, reads the downloads there too)."""
    return service.downloads_dir(till.data_dir)


def download(
    till: Till, notice: fmt.ReleaseNotice, *, sleep: Callable[[float], None] | None = None
) -> Path | None:
    """The offered bundle in ``DIR/updates/downloads/`` (downloaded, or resumed, now);
    None when a sale opened meanwhile (the part is kept). Records ``update.downloaded``
    once per version, ``update.download_failed`` for a file that is not the notice's."""
    section = till.config.section("updates")
    ca_file = section["download_ca"] or str(till.config.section("sync").get("tls_ca") or "")
    target = service.downloaded_bundle(till.data_dir, notice.version)
    if target.parent.exists():
        for old in target.parent.iterdir():
            if old.name not in (target.name, target.name + ".part"):
                old.unlink(missing_ok=True)  # an older offer's download
    if target.exists():
        return target
    kwargs = {"sleep": sleep} if sleep else {}
    try:
        got = fetch(
            notice.url,
            target,
            size=notice.size,
            sha256=notice.sha256,
            ca_file=ca_file,
            rate=float(section["download_rate"]) or None,
            keep_going=lambda: not saleopen.is_open(till.data_dir),
            **kwargs,
        )
    except DownloadRefused as exc:
        service.record_download_failed(till, notice.version, notice.url, str(exc))
        raise
    if got.status == "paused":
        return None
    service.record_downloaded(till, notice.version, notice.url, notice.sha256, notice.size)
    return target


def offered_for(till: Till, url: str) -> fmt.ReleaseNotice:
    """The notice in force whose bundle is at ``url`` (``tillbox update install URL``):
    only the region's signed notice says how big the file is and what it hashes to."""
    from appliance.region import release_offer

    notice = release_offer(till.log.conn)
    if notice is None or notice.url != url:
        raise RuleViolation(
            "this URL is not the bundle of the region's release notice in force (see "
            "`tillbox update status`); install the offered URL, or copy the bundle to a "
            "USB stick and pass its path"
        )
    return notice


def step(till: Till, *, sleep: Callable[[float], None] | None = None) -> str:
    """The sync agent's pass: ``none``, ``done``, ``paused`` (a sale) or ``downloaded``
    (the bundle waits in ``DIR/updates/downloads/`` for :func:`install_offered`); raises a
    one-line TillError. The agent is not root, and RAUC is root's only: it never installs."""
    from appliance.region import release_offer

    notice = release_offer(till.log.conn)
    if notice is None:
        return "none"
    if service.done_already(till, notice.version) or service.failed_before(till, notice.version):
        return "done"
    return "paused" if download(till, notice, sleep=sleep) is None else "downloaded"


def install_offered(till: Till, updater: Updater) -> str:
    """Root's pass (``tillbox update apply``): install the offer's downloaded bundle
    between shifts. ``none`` (no offer, not downloaded yet, or installed already),
    ``waiting`` (a shift or a sale is open) or ``installed``; raises a one-line TillError
    (the install's own, recorded as ``update.failed`` when it started)."""
    from appliance.region import release_offer

    notice = release_offer(till.log.conn)
    if notice is None or service.done_already(till, notice.version):
        return "none"
    if service.failed_before(till, notice.version):
        return "none"  # not again by itself: see `tillbox update status`
    target = service.downloaded_bundle(till.data_dir, notice.version)
    if not target.is_file():  # a whole download only: the agent renames it when hashed
        return "none"
    try:
        service.check_install_time(service.activity(till), SCHEDULE)
    except RuleViolation:
        return "waiting"  # installs between shifts; the next pass tries again
    service.install(till, updater, target, by=SCHEDULE)
    target.unlink(missing_ok=True)
    return "installed"
