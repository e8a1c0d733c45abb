"""Instant messaging and presence for accounts (RFC 6121), as one package of feature files.

- ``roster.py``: the ``roster`` module, jabber:iq:roster get/set/remove and versioning (§2);
- ``rosters.py``: the host's rosters service (cache, locks, storage, pushes; ``RosterService``);
- ``presence.py``: the ``presence`` module, broadcast, probes, directed presence (§4) and the
  handling of subscription stanzas (§3);
- ``subscription.py``: the subscription state machine of Appendix A, as pure logic;
- ``stanzas.py``: the presence stanzas the server builds and how they are routed.
"""
