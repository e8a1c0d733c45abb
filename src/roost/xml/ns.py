"""XML namespaces used by roost, as constants (never scatter literals in modules)."""

from typing import Final

# RFC 6120
NS_STREAMS: Final = "http://etherx.jabber.org/streams"
NS_CLIENT: Final = "jabber:client"  # also the canonical in-memory stanza namespace
NS_SERVER: Final = "jabber:server"
NS_COMPONENT: Final = "jabber:component:accept"
NS_XML: Final = "http://www.w3.org/XML/1998/namespace"
NS_TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
# RFC 3921 legacy session establishment
NS_SESSION: Final = "urn:ietf:params:xml:ns:xmpp-session"
# RFC 7395
NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"

# XEPs
NS_DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS: Final = "http://jabber.org/protocol/disco#items"
NS_PING: Final = "urn:xmpp:ping"
NS_VERSION: Final = "jabber:iq:version"
NS_TIME: Final = "urn:xmpp:time"
NS_DATA_FORMS: Final = "jabber:x:data"
NS_STREAM_LIMITS: Final = "urn:xmpp:stream-limits:0"  # XEP-0478
NS_DELAY: Final = "urn:xmpp:delay"
