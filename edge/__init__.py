"""tillbox edge package."""
