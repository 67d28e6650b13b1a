"""tillbox drivers package."""
