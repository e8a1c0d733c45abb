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
FEATURE_MSGOFFLINE: Final = "msgoffline"  # XEP-0160 §6: offline storage (a disco feature)
NS_BLOCKING: Final = "urn:xmpp:blocking"  # XEP-0191
NS_BLOCKING_ERRORS: Final = "urn:xmpp:blocking:errors"  # XEP-0191 §3.3
NS_VCARD: Final = "vcard-temp"  # XEP-0054
NS_VCARD_UPDATE: Final = "vcard-temp:x:update"  # XEP-0153
NS_PRIVATE: Final = "jabber:iq:private"  # XEP-0049
NS_LAST: Final = "jabber:iq:last"  # XEP-0012
NS_ROSTER: Final = "jabber:iq:roster"  # RFC 6121 §2
NS_ROSTER_VER: Final = "urn:xmpp:features:rosterver"  # RFC 6121 §2.6 (stream feature)
NS_PRE_APPROVAL: Final = "urn:xmpp:features:pre-approval"  # RFC 6121 §3.4 (stream feature)
NS_HTTPBIND: Final = "http://jabber.org/protocol/httpbind"  # XEP-0124
NS_XBOSH: Final = "urn:xmpp:xbosh"  # XEP-0206
NS_XRD: Final = "http://docs.oasis-open.org/ns/xri/xrd-1.0"  # XEP-0156 §3.1
NS_SASL_CB: Final = "urn:xmpp:sasl-cb:0"  # XEP-0440
