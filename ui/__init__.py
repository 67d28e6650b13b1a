"""tillbox ui package."""
