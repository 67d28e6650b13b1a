"""The online update delivery on a till: the region's notice, the download, the install.

The region publishes a signed release notice (``appliance.formats.region``, kind
``release``, retained on ``tillbox/v1/<tenant>/region/release``). The sync agent
applies it through :func:`appliance.region.apply_signed` with :func:`offer_checker`:
a notice for other hardware, for a version not above the running one, or signed by a
release key the keyring does not hold is recorded as ``update.ignored`` with the
reason; any other as ``update.offered``.

:func:`step` is one pass over the offer in force (the agent runs it in a thread every
``[updates] download_check_s``; ``tillbox update fetch`` runs it once):

1. nothing to do when that version is installed or committed already;
2. download the bundle (:mod:`drivers.download`) into ``DIR/updates/downloads/``,
   paused while a sale is open, at ``[updates] download_rate`` bytes/s, bounded and
   hashed by the notice: ``update.downloaded``, or ``update.download_failed`` for a
   file that is not the one the notice names;
3. install it between shifts only (``appliance.updates.check_install_time`` with
   ``by=schedule``) through :func:`appliance.services.updates.install`, which checks
   the bundle's signature, hardware and version again and records ``update.*``. The
   till restarts into it at the next shift close (``restart_at_close``).
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
from appliance.updates import SCHEDULE, Updater, offer_problem
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
            return f"the updater cannot say what this till runs ({str(exc)[:200]})"
        keyring = Path(till.config.section("updates")["keyring"])
        return offer_problem(
            status, notice.version, notice.compatible, notice.key_id, keyring_ids(keyring)
        )

    return check


def downloads_dir(till: Till) -> Path:
    return till.data_dir.root / "updates" / "downloads"


def download(
    till: Till, notice: fmt.ReleaseNotice, *, sleep: Callable[[float], None] | None = None
) -> Path | None:
    """The offered bundle in ``DIR/updates/downloads/`` (downloaded, or resumed, now);
    None when a sale opened meanwhile (the part is kept). Records ``update.downloaded``
    once per version, ``update.download_failed`` for a file that is not the notice's."""
    section = till.config.section("updates")
    ca_file = section["download_ca"] or str(till.config.section("sync").get("tls_ca") or "")
    target = downloads_dir(till) / f"tillbox-{notice.version}.raucb"
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


def offer_state(till: Till) -> tuple[dict[str, object] | None, str]:
    """The region's release notice in force and one line on where it stands, for
    ``tillbox update status``: (None, "") without one."""
    import json

    row = service.release_notice_row(till)
    if row is None:
        return None, ""
    body = json.loads(row[3])
    notice = body["notice"]
    version = notice["version"]
    out: dict[str, object] = {"notice": notice, "ignored": body["ignored"]}
    if body["ignored"]:
        return out, f"the region offers {version}; ignored: {body['ignored']}"
    if service.done_already(till, version):
        return out | {"state": "installed"}, f"the region offers {version}: installed"
    target = downloads_dir(till) / f"tillbox-{version}.raucb"
    part = target.with_name(target.name + ".part")
    if target.exists():
        return out | {"state": "downloaded"}, (
            f"the region offers {version}: downloaded; it installs between shifts"
        )
    have = part.stat().st_size if part.exists() else 0
    return out | {"state": "downloading", "bytes": have}, (
        f"the region offers {version}: downloading, {have} of {notice['size']} bytes "
        "(paused while a sale is open)"
    )


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


def step(
    till: Till,
    *,
    updater: Updater | None = None,
    sleep: Callable[[float], None] | None = None,
) -> str:
    """One pass: ``none``, ``done``, ``paused`` (a sale), ``downloaded`` (waiting for
    the shift to close), ``installed``, or raises a one-line TillError."""
    from appliance.region import release_offer

    notice = release_offer(till.log.conn)
    if notice is None:
        return "none"
    if service.done_already(till, notice.version):
        return "done"
    target = download(till, notice, sleep=sleep)
    if target is None:
        return "paused"
    try:
        service.check_install_time(service.activity(till), SCHEDULE)
    except RuleViolation:
        return "downloaded"  # installs between shifts; the next pass tries again
    updater = updater or open_updater(till.config, till.data_dir)
    service.install(till, updater, target, by=SCHEDULE)
    target.unlink(missing_ok=True)
    return "installed"
