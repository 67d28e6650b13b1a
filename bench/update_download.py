"""The online update download (drivers/download.py) against a real HTTPS server.

Prints, for one body the size of a release bundle (default 323 MiB, the size
`make update-bundle` makes today):

- the baseline: one plain urllib3 GET of the whole body into a file, same server, same
  TLS, measured in this run;
- ``fetch`` unthrottled (part file, fsync, SHA-256 of what arrived), as a ratio to it;
- ``fetch`` after a cut at half way: the bytes sent again (the resume asks only for the
  rest) and the time, as a ratio to the baseline;
- the rate limit: the achieved rate of a rate-limited ``fetch`` of 64 MiB, as a ratio to
  the rate asked for (the token bucket starts with one second's burst), and what the
  default ``[updates] download_rate`` means for a whole bundle.

Run: ``.venv/bin/python -P bench/update_download.py [--mib 323] [--rate-mib 4]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import urllib3  # noqa: E402

from drivers import download  # noqa: E402
from drivers.updates import SECTIONS  # noqa: E402
from systest.https import FileServer  # noqa: E402


def plain_get(url: str, target: Path, ca: Path) -> float:
    started = time.perf_counter()
    pool = urllib3.PoolManager(ssl_context=download.tls_context(str(ca)))
    response = pool.request("GET", url, preload_content=False)
    with target.open("wb") as out:
        for chunk in response.stream(1 << 20):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    response.release_conn()
    return time.perf_counter() - started


def timed_fetch(server: FileServer, target: Path, body: bytes, **kw: object) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    result = download.fetch(server.url, target, size=len(body),
                            sha256=hashlib.sha256(body).hexdigest(), ca_file=str(server.cert),
                            **kw)  # type: ignore[arg-type]  # fmt: skip
    elapsed = time.perf_counter() - started
    assert target.stat().st_size == len(body), result
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=323, help="body size (MiB)")
    parser.add_argument("--rate-mib", type=float, default=4.0, help="rate limit to check")
    args = parser.parse_args()
    body = os.urandom(args.mib * 2**20)
    mib = len(body) / 2**20
    with tempfile.TemporaryDirectory(prefix="tbdl-") as tmp:
        folder = Path(tmp)
        server = FileServer(folder, body).start()
        try:
            base = plain_get(server.url, folder / "plain.bin", server.cert)
            whole = timed_fetch(server, folder / "bundle.raucb", body)
            server.ranges.clear()
            server.cut_after = len(body) // 2
            cut = timed_fetch(server, folder / "bundle.raucb", body)
            resumed = server.ranges[-1] or ""
            again = len(body) - int(resumed.removeprefix("bytes=").rstrip("-") or 0)
            small = body[: 64 * 2**20]
            server.body = small
            rate = args.rate_mib * 2**20
            limited = timed_fetch(server, folder / "bundle.raucb", small, rate=rate)
        finally:
            server.close()
    default_rate = SECTIONS["updates"].defaults()["download_rate"]
    print(f"body {mib:.0f} MiB over HTTPS on 127.0.0.1")
    print(f"baseline: plain urllib3 GET into a file   {base:6.2f} s  {mib / base:7.1f} MiB/s  1.00")
    print(f"fetch (part file, fsync, SHA-256)         {whole:6.2f} s  {mib / whole:7.1f} MiB/s  "
          f"{whole / base:.2f}")  # fmt: skip
    print(f"fetch cut at half, resumed ({resumed})  {cut:6.2f} s  sent again "
          f"{again / len(body):.2f} of the body  {cut / base:.2f}")  # fmt: skip
    achieved = len(small) / limited / 2**20
    burst = len(small) / (len(small) - rate)  # the bucket starts full: one second's worth
    print(f"rate limit {args.rate_mib:g} MiB/s on 64 MiB: achieved {achieved:.2f} MiB/s, "
          f"{achieved / args.rate_mib:.2f} of the limit (a one-second burst allows "
          f"{burst:.2f})")  # fmt: skip
    print(f"default [updates] download_rate {default_rate:,} B/s: a {mib:.0f} MiB bundle takes "
          f"{len(body) / default_rate / 60:.1f} min")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
