"""Raw web clients for the integration tests: RFC 7395 WebSocket and XEP-0124/0206 BOSH.

Both speak the wire format through aiohttp's client and check that everything the server
sends is a standalone XML document (each frame, each body), parsed by ElementTree.
"""

from __future__ import annotations

import base64
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
from scramp import ScramClient

from roost.stream.framing import FrameParser
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_FRAMING, NS_HTTPBIND, NS_SASL, NS_STREAMS, NS_XBOSH
from roost.xml.serializer import escape_attr, serialize

DOMAIN = "localhost"
TIMEOUT = 10.0


def parse_document(data: bytes) -> Element:
    """One standalone document from the server, as an Element (ElementTree checks it too)."""
    ET.fromstring(data)  # namespace-well-formed on its own, or this raises
    element = FrameParser(max_bytes=1 << 24, max_depth=1000, max_elements=100_000).parse(data)
    assert element is not None, data
    return element


def open_frame(to: str = DOMAIN, **extra: str) -> str:
    attrs = "".join(f" {k}='{escape_attr(v)}'" for k, v in extra.items())
    return f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'{attrs}/>"


def is_stream_error(element: Element) -> bool:
    return element.name == "error" and element.xmlns == NS_STREAMS


def error_condition(element: Element) -> str:
    """The condition of a stream error or of a BOSH <body type='terminate'/>."""
    if element.name == "body":
        return element.get("condition") or ""
    return next(c.name for c in element.elements() if c.name != "text")


def bind_iq(resource: str | None = None, iq_id: str = "bind1") -> str:
    iq = Element("iq", NS_CLIENT, {"type": "set", "id": iq_id})
    bind = iq.sub("bind", NS_BIND)
    if resource is not None:
        bind.sub("resource", NS_BIND, resource)
    return serialize(iq).decode().replace("<iq ", f"<iq xmlns='{NS_CLIENT}' ", 1)


async def sasl(
    exchange: Callable[[str], Awaitable[Element]], user: str, password: str, mechanism: str
) -> Element:
    """Run one SASL exchange; ``exchange`` sends an element and returns the server's answer."""
    if mechanism == "PLAIN":
        payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return await exchange(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    client = ScramClient([mechanism], user, password)
    first = base64.b64encode(client.get_client_first().encode()).decode()
    answer = await exchange(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
    assert answer.name == "challenge", serialize(answer)
    client.set_server_first(base64.b64decode(answer.text).decode())
    final = base64.b64encode(client.get_client_final().encode()).decode()
    answer = await exchange(f"<response xmlns='{NS_SASL}'>{final}</response>")
    if answer.name == "success":
        client.set_server_final(base64.b64decode(answer.text).decode())
    return answer


class WsClient:
    """An XMPP-over-WebSocket client speaking frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: str) -> None:
        await self.ws.send_str(frame)

    async def next(self, timeout: float = TIMEOUT) -> Element:
        """The next frame as an element (fails on a non-text message)."""
        message = await self.ws.receive(timeout=timeout)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return parse_document(message.data.encode())

    async def open(self, to: str = DOMAIN) -> Element:
        """Send <open/>; return the features after the server's <open/>."""
        await self.send(open_frame(to))
        opened = await self.next()
        assert (opened.name, opened.xmlns) == ("open", NS_FRAMING), serialize(opened)
        features = await self.next()
        assert (features.name, features.xmlns) == ("features", NS_STREAMS), serialize(features)
        return features

    async def exchange(self, frame: str) -> Element:
        await self.send(frame)
        return await self.next()

    async def login(
        self, user: str, password: str, *, mechanism: str = "PLAIN", resource: str | None = None
    ) -> str:
        """Open, authenticate, restart, bind: the full JID."""
        await self.open()
        answer = await sasl(self.exchange, user, password, mechanism)
        assert answer.name == "success", serialize(answer)
        await self.open()
        result = await self.exchange(bind_iq(resource))
        assert result.get("type") == "result", serialize(result)
        return _bound_jid(result)


def _bound_jid(result: Element) -> str:
    bind = result.find("bind", NS_BIND)
    assert bind is not None, serialize(result)
    return bind.find_text("jid", NS_BIND) or ""


class BoshClient:
    """A BOSH client: one request at a time unless a test sends its own."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.http = http
        self.url = url
        self.headers = dict(headers or {})
        self.rid = secrets.randbelow(1 << 40) + 1000
        self.sid = ""

    def body(self, attrs: Mapping[str, str], payload: str = "", *, rid: int | None = None) -> str:
        values = dict(attrs)
        values["rid"] = str(self.rid if rid is None else rid)
        if self.sid and "sid" not in values:
            values["sid"] = self.sid
        text = "".join(f" {k}='{escape_attr(v)}'" for k, v in values.items())
        return f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'{text}>{payload}</body>"

    async def post_raw(self, data: str | bytes) -> Element:
        """POST bytes; the response body."""
        async with self.http.post(
            self.url,
            data=data,
            headers={"Content-Type": "text/xml; charset=utf-8", **self.headers},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            assert response.status == 200, response.status
            assert response.content_type == "text/xml"
            body = parse_document(await response.read())
        assert (body.name, body.xmlns) == ("body", NS_HTTPBIND), serialize(body)
        return body

    async def post(self, attrs: Mapping[str, str] | None = None, payload: str = "") -> Element:
        """The next request (rid + 1); the response body."""
        self.rid += 1
        return await self.post_raw(self.body(attrs or {}, payload))

    async def create(self, **attrs: str) -> Element:
        values = {"to": DOMAIN, "wait": "5", "hold": "1", "ver": "1.6", "xmpp:version": "1.0"}
        values.update(attrs)
        body = await self.post_raw(self.body(values))
        self.sid = body.get("sid") or ""
        return body

    async def exchange(self, payload: str) -> Element:
        """Send one element; its answer (the first child of the response)."""
        body = await self.post(payload=payload)
        if not list(body.elements()):  # answered empty (wait): ask again
            body = await self.post()
        first = body.first_element()
        assert first is not None, serialize(body)
        return first

    async def login(
        self, user: str, password: str, *, mechanism: str = "PLAIN", resource: str | None = None
    ) -> str:
        """Create, authenticate, restart, bind: the full JID."""
        created = await self.create()
        assert created.find("features", NS_STREAMS) is not None, serialize(created)
        answer = await sasl(self.exchange, user, password, mechanism)
        assert answer.name == "success", serialize(answer)
        restarted = await self.post({"xmpp:restart": "true", "to": DOMAIN})
        assert restarted.find("features", NS_STREAMS) is not None, serialize(restarted)
        result = await self.exchange(bind_iq(resource))
        assert result.get("type") == "result", serialize(result)
        return _bound_jid(result)
