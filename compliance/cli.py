"""Command group registration (filled in by this package's issue)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's commands to the ``tillbox`` parser. Keep imports inside handlers."""
