"""Every hashed, signed or wire format of the system, each in one module.

Pure code (no I/O beyond what a caller hands in): canonical JSON, the event chain
and its export line, the sync wire (segments, acks, region updates), the signed
receipt QR, and the broker URL. docs/formats.md gives the bytes and test vectors.
"""
