"""tillbox compliance package."""
