"""The console as an ASGI app: ``create_app(store_url, region_key_path=None)``.

It serves the pages and ``/api/v1/`` (OpenAPI at ``/api/v1/openapi.json``) from the
routers listed in :mod:`console.routes`, static files (the stylesheet) from the package
(nothing from a CDN), and runs the receipt index's catch-up in a background thread.
``tillbox edge web`` runs it under uvicorn.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from console import receipts, tables
from console.auth import now_ms
from console.fleet import SILENT_AFTER_MS
from console.routes import MODULES, enrollments
from console.routes.enrollments import Publisher
from console.web import HERE, BodyLimit, StorePool, guard, install_error_handlers

log = logging.getLogger("tillbox.console")

INDEX_INTERVAL_S = 2.0


class Indexer:
    """Catches the receipt index up every few seconds, on a connection of its own."""

    def __init__(self, pool: StorePool, interval_s: float) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        with self.pool.store() as store:
            return receipts.catch_up(store, now_ms())

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("receipt index catch-up failed; retrying")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="receipt-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# A bundle's name as the releases folder holds it: no "/", no "..", no hidden file.
_RELEASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\.raucb")


def _serve_releases(app: FastAPI, folder: Path) -> None:
    """The update bundles for the tills' online delivery, with HTTP Range (Starlette's
    FileResponse answers ``Range: bytes=N-`` with 206), so a cut download resumes. No
    login: a bundle is signed by the release key and the till checks that (and the
    notice's SHA-256) before it installs. Only plain files named like a bundle, directly
    in ``folder``: a name cannot climb out of it, and a symbolic link is not followed."""

    @app.get("/releases/{name}", include_in_schema=False)
    def release_bundle(name: str) -> FileResponse:
        path = folder / name
        if not _RELEASE_NAME.fullmatch(name) or path.is_symlink() or not path.is_file():
            raise HTTPException(404, "no such release bundle")
        return FileResponse(path, media_type="application/octet-stream")


def create_app(
    store_url: str,
    region_key_path: str | Path | None = None,
    *,
    secure_cookie: bool = True,
    silent_after_ms: int = SILENT_AFTER_MS,
    index_interval_s: float | None = INDEX_INTERVAL_S,
    publisher: Publisher | None = None,
    releases_dir: str | Path | None = None,
) -> FastAPI:
    """The console over the edge database at ``store_url``.

    ``publisher`` (the region broker and the publisher identity) sends the signed
    enrollment reviews down to the tills; without it a review is kept and sent later.

    ``secure_cookie=False`` drops the cookie's Secure flag, for a plain-HTTP demo on a
    LAN only (browsers accept Secure cookies from http://127.0.0.1 and localhost).
    ``index_interval_s=None`` runs no background indexer (tests call catch-up themselves).
    ``releases_dir`` serves its ``*.raucb`` bundles at ``/releases/<name>`` to the tills.
    """
    pool = StorePool(store_url)
    with pool.store() as store:  # fails here, with the edge's one-line error, not later
        tables.ensure_schema(store)
    indexer = Indexer(pool, index_interval_s or INDEX_INTERVAL_S)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if index_interval_s is not None:
            indexer.start()
        try:
            yield
        finally:
            indexer.stop()
            pool.close()

    app = FastAPI(
        title="tillbox region console",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the interactive docs load from a CDN; the schema is enough
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(guard)],
    )
    app.state.pool = pool
    app.state.indexer = indexer
    app.state.region_key_path = str(region_key_path) if region_key_path else None
    app.state.secure_cookie = secure_cookie
    app.state.silent_after_ms = silent_after_ms
    app.state.publisher = publisher
    app.state.nav = [item for module in MODULES for item in module.NAV]
    install_error_handlers(app)
    for module in MODULES:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    if releases_dir is not None:
        _serve_releases(app, Path(releases_dir))
    app.add_middleware(
        BodyLimit,
        limit=receipts.UPLOAD_LIMIT + 64 * 1024,
        larger={path: enrollments.UPLOAD_LIMIT + 64 * 1024 for path in enrollments.UPLOAD_PATHS},
    )

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        # Nothing from elsewhere, no framing, no sniffing: the page works without scripts.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'none'; frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith(("/api/", "/receipts", "/admin")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
