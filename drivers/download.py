"""Downloading a release bundle over HTTPS: resumable, rate-limited, bounded, hashed.

The transport for the online update delivery (:mod:`drivers.update_fetch` decides what
to fetch and when). The bytes go into ``NAME.part`` beside the target; after a cut the
next attempt asks for the rest with ``Range: bytes=N-`` (a server that answers 200
instead starts the file over). The body may never exceed the size the signed notice
names, and the whole file must hash to its SHA-256, or the part file is removed and
nothing is handed on. TLS is verified against the CA file given (the region's, the
one the sync agent trusts for MQTT), else the system's.

``keep_going`` is asked before every chunk: a sale opening on the kiosk stops the
download at once (the part file stays, and the next pass resumes it). The rate is a
token bucket (:class:`TokenBucket`), computed from an injected clock so that it can be
tested without waiting. urllib3 does the HTTP (a dependency of the kiosk already).
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3

from appliance.boundedio import CHUNK
from appliance.errors import TillError
from appliance.fsutil import fsync_dir

CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0
ATTEMPTS = 5  # cuts survived in one pass before giving up until the next
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class DownloadError(TillError):
    """The download could not finish now (a cut, the region unreachable): the part
    file is kept and the next pass resumes it."""


class DownloadRefused(TillError):
    """What the region sent is not the bundle the notice names (too big, another
    hash): the part file is removed; nothing is installed."""

    exit_code = 4


class TokenBucket:
    """``rate`` bytes per second on average, bursts of at most ``burst`` bytes.

    :meth:`take` answers how long to wait before sending ``n`` more bytes; the caller
    sleeps it. ``clock`` is injected (tests compute the waits without sleeping)."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0 bytes/s")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, CHUNK))
        self.clock = clock
        self.tokens = self.burst
        self.last = clock()

    def take(self, n: int) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        # In debt: the bytes may go once the debt is paid back at ``rate``.
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Verifying TLS: the CA file given (the region's), else the system's store."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise TillError(
            f"cannot load the CA certificate {ca_file} ({exc}); check [sync] tls_ca"
        ) from None


@dataclass(frozen=True)
class Fetched:
    status: str  # "done" | "paused"
    path: Path
    received: int  # bytes this call received


def _part_size(part: Path, size: int) -> int:
    """The bytes a cut left; a part longer than the bundle can be is started over."""
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    if have > size:
        part.unlink()
        return 0
    return have


def _hash_part(part: Path, size: int) -> tuple[int, hashlib._Hash]:
    digest = hashlib.sha256()
    have = 0
    if not part.exists():
        return 0, digest
    with open(part, "rb") as f:
        while have < size and (chunk := f.read(min(CHUNK, size - have))):
            digest.update(chunk)
            have += len(chunk)
    if part.stat().st_size != have:  # longer than the bundle can be: start over
        part.unlink()
        return 0, hashlib.sha256()
    return have, digest


def fetch(
    url: str,
    target: Path,
    *,
    size: int,
    sha256: str,
    ca_file: str = "",
    rate: float | None = None,
    keep_going: Callable[[], bool] = lambda: True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = ATTEMPTS,
) -> Fetched:
    """Download ``url`` into ``target`` (via ``target.part``), resuming what a cut left.

    ``done``: ``target`` holds exactly ``size`` bytes hashing to ``sha256``. ``paused``:
    ``keep_going`` said stop (a sale); the part is kept. DownloadError after
    ``attempts`` cuts in a row (the part is kept); DownloadRefused for a body over
    ``size``, a wrong hash or a server that lies about the range (the part is removed)."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    pool = urllib3.PoolManager(
        ssl_context=tls_context(ca_file),
        retries=False,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
    )
    bucket = TokenBucket(rate, clock=clock) if rate else None
    received = 0
    last_error = ""
    try:
        for attempt in range(attempts):
            have = _part_size(part, size)
            if have == size:
                break
            try:
                outcome, got = _one_request(pool, url, part, have, size, bucket, keep_going, sleep)
            except DownloadError as exc:
                received += getattr(exc, "received", 0)
                last_error = str(exc)
                sleep(min(30.0, 2.0**attempt))
                continue
            received += got
            if outcome == "paused":
                return Fetched("paused", part, received)
            break
        else:
            raise DownloadError(
                f"the download of {url} was cut {attempts} times ({last_error}); it resumes "
                "at the next try"
            )
        have, digest = _hash_part(part, size)
        if have != size:
            raise DownloadError(f"the download of {url} stopped at {have} of {size} bytes")
        if digest.hexdigest() != sha256:
            part.unlink(missing_ok=True)
            raise DownloadRefused(
                f"the bundle from {url} does not have the SHA-256 the region's notice names "
                "(the region serves another file); nothing was installed"
            )
        os.replace(part, target)
        fsync_dir(target.parent)
        return Fetched("done", target, received)
    finally:
        pool.clear()


def _one_request(
    pool: urllib3.PoolManager,
    url: str,
    part: Path,
    have: int,
    size: int,
    bucket: TokenBucket | None,
    keep_going: Callable[[], bool],
    sleep: Callable[[float], None],
) -> tuple[str, int]:
    if not keep_going():
        return "paused", 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    got = 0
    try:
        response = pool.request("GET", url, headers=headers, preload_content=False, redirect=False)
    except urllib3.exceptions.SSLError as exc:
        raise DownloadRefused(
            f"the region's TLS certificate for {url} does not verify ({exc.__class__.__name__}); "
            "check [sync] tls_ca"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise DownloadError(f"cannot reach {url} ({exc.__class__.__name__})") from None
    try:
        if response.status == 206 and have:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != have or int(match[3]) != size:
                raise DownloadRefused(
                    f"{url} answered the range from {have} with "
                    f"{response.headers.get('Content-Range', 'no Content-Range')[:60]!r}, "
                    f"not the rest of a {size}-byte bundle"
                )
            mode = "ab"
        elif response.status == 200:
            have, mode = 0, "wb"  # no ranges: start the file over
        else:
            raise DownloadError(f"{url} answered HTTP {response.status}")
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and have + int(length) > size:
            raise DownloadRefused(
                f"{url} sends {have + int(length)} bytes and the region's notice says "
                f"{size}; nothing was installed"
            )
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, mode) as out:
            if mode == "wb":
                out.truncate(0)
            try:
                while True:
                    if not keep_going():
                        return "paused", got
                    # read1: what has arrived, so a cut loses nothing already received
                    chunk = response.read1(CHUNK)
                    if not chunk:
                        break
                    if have + got + len(chunk) > size:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise DownloadRefused(
                            f"{url} sent more than the {size} bytes the region's notice "
                            "names; nothing was installed"
                        )
                    out.write(chunk)
                    got += len(chunk)
                    if bucket is not None:
                        wait = bucket.take(len(chunk))
                        if wait:
                            sleep(wait)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                out.flush()
                os.fsync(out.fileno())
                error = DownloadError(f"cut after {have + got} bytes ({exc.__class__.__name__})")
                error.received = got  # type: ignore[attr-defined]
                raise error from None
            out.flush()
            os.fsync(out.fileno())
        return "done", got
    finally:
        response.release_conn()
