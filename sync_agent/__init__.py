"""tillbox sync_agent package."""
