"""Sans-IO stream state machines: they take parse events and return actions (no sockets)."""
