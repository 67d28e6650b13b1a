"""The region broker configuration files (shipped as package data)."""
