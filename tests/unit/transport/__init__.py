"""Unit tests of the transports (no sockets)."""
