"""A real HTTPS file server for the download tests, with a test CA made by openssl.

It serves one body at ``/releases/<name>`` with ``Range: bytes=N-`` (206 and
Content-Range, as the region console does), and can cut the connection after a number
of bytes (``cut_after``: once, for the next response), lie about the body, or send
more than it says. Every request's Range header is recorded.
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from pathlib import Path

DEFAULT_SANS = ("IP:127.0.0.1", "DNS:localhost")


def make_cert(
    folder: Path, name: str = "region", extra_sans: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """A self-signed CA-and-server certificate for 127.0.0.1 and localhost, and for
    ``extra_sans`` in openssl's spelling (``IP:10.0.2.100``: the host as a QEMU guest
    reaches it): (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    sans = ",".join((*DEFAULT_SANS, *extra_sans))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName={sans}",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class FileServer:
    def __init__(self, folder: Path, body: bytes, name: str = "bundle.raucb") -> None:
        self.body = body
        self.name = name
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        self.cert, self.key = make_cert(folder)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # http.server calls it by this name
                server.ranges.append(self.headers.get("Range"))
                if self.path != f"/releases/{server.name}":
                    self.send_error(404)
                    return
                body, start = server.body, 0
                asked = self.headers.get("Range")
                if asked and asked.startswith("bytes=") and asked.endswith("-"):
                    start = int(asked[6:-1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                cut, server.cut_after = server.cut_after, None
                if cut is not None:
                    self.wfile.write(rest[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(rest)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/releases/{self.name}"

    def start(self) -> FileServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
