"""The one parser for broker URLs (``mqtt://HOST:PORT``, ``mqtts://HOST:PORT``).

The sync agent, the edge, the self-test and the config schema all use it, so a URL
one of them accepts the others accept too. A password in the URL is refused: a
command line is visible to every local user in ``ps``; it belongs in a 0600 file
named by ``[sync] password_file`` (``--password-file`` for the edge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from appliance.errors import TillError

SCHEMES = {"mqtt": False, "mqtts": True}  # scheme -> TLS
DEFAULT_PORTS = {False: 1883, True: 8883}


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool
    username: str = ""
    password: str = field(default="", repr=False)  # always empty from parse(); kept for callers

    @classmethod
    def parse(cls, text: str) -> BrokerURL:
        """Parse and check; a TillError with the fix for anything else."""
        if not isinstance(text, str):
            raise TillError(f"broker {text!r} must be a text like mqtt://HOST:PORT")
        try:
            parts = urlsplit(text.strip())
            port_text = parts.port
        except ValueError:
            raise TillError(
                f"broker {redact(text)!r} has a bad host or port; use mqtt://HOST:PORT"
            ) from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise TillError(
                f"broker {redact(text)!r} must look like mqtt://HOST:PORT or "
                "mqtts://HOST:PORT; set --broker or [sync] broker"
            )
        if parts.password is not None:
            raise TillError(
                f"broker {redact(text)!r} carries a password, which every local user can "
                "read; remove it from the URL and put it in a file only the service can "
                "read (chmod 600), named by [sync] password_file (edge: --password-file)"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise TillError(
                f"broker {redact(text)!r} must be only mqtt://HOST:PORT (no path or query)"
            )
        tls = SCHEMES[parts.scheme]
        return cls(
            parts.hostname, port_text or DEFAULT_PORTS[tls], tls, unquote(parts.username or "")
        )

    def redacted(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def redact(text: str) -> str:
    """``text`` with any password in it replaced by ``***`` (for error messages)."""
    try:
        password = urlsplit(text).password
    except ValueError:
        password = None
    if password:
        return text.replace(f":{password}@", ":***@")
    return text
