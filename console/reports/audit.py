"""The audit hook the reports call: ``audit(user, action, detail)``.

The console's audit log (who viewed or exported what) is the web app's; the reports
take it as a callable so that every export and every filing is recorded whatever
page, API route or script asks for it. It is a required argument, never a default,
so a caller cannot forget it. The hook runs after the work succeeded and before the
result is handed back: an export whose audit entry cannot be written is not returned.
"""

from __future__ import annotations

from collections.abc import Callable

Audit = Callable[[str, str, str], None]


def detail(**fields: object) -> str:
    """``key=value`` pairs in a stable order, one line (values never hold a secret)."""
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
