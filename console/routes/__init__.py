"""The console's routes, one module per area; :func:`console.app.create_app` includes each.

A module offers ``router`` (a FastAPI APIRouter: its pages and its ``/api/v1/`` routes)
and ``NAV`` (``(area, label, path)`` for the navigation, shown to the roles that
``console.scope.ACCESS`` allows for the area). To add pages, add a module here and one
line to MODULES, and its areas to ``console.scope.ACCESS``. Every route gets the
session, error and CSRF handling of the app without asking (the CSRF guard is an
app-wide dependency).
"""

from __future__ import annotations

from types import ModuleType

from console.routes import (
    admin,
    bookings,
    enrollments,
    fleet,
    home,
    inspector,
    merchant,
    promoter,
    session,
    tax,
)

MODULES: tuple[ModuleType, ...] = (
    home,
    session,
    merchant,
    bookings,
    fleet,
    admin,
    tax,
    promoter,
    inspector,
    enrollments,
)
