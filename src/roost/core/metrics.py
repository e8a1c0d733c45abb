"""Counters of one server for ``/metrics`` (Prometheus text format, prometheus-client).

The hot path only bumps plain integers on a ``Metrics`` object (no lock, no label lookup per
stanza); a collector turns them into metric families when ``/metrics`` is scraped, together
with gauges read from the core at that moment. Every server has its own registry: no process
globals, so two servers in one process (the s2s tests) count apart.

Exported:
- ``roost_limit_rejections_total{reason}``: input refused or a connection closed by a limit
  of docs/configuration.md [limits], by reason (``REASONS``);
- ``roost_stream_errors_total{condition}``: stream errors sent, by RFC 6120 condition;
- ``roost_auth_failures_total{condition}``: failed SASL attempts, by RFC 6120 §6.5 condition;
- ``roost_read_throttles_total``: times reading from a client paused for the read rate;
- ``roost_connections_accepted_total``, ``roost_stanzas_received_total``,
  ``roost_stanzas_sent_total``;
- gauges ``roost_connections``, ``roost_connections_unauthenticated``, ``roost_sessions``,
  ``roost_memory_shedding`` and ``roost_limit{name}`` (the configured limits);
- the ``process_*`` metrics of prometheus-client (memory, CPU, file descriptors).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import TYPE_CHECKING, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from roost.errors import StreamError

if TYPE_CHECKING:
    from roost.core.server import ServerCore

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# The reasons a limit refuses input or ends a connection (the label values of
# roost_limit_rejections_total); all are exported from the start, at 0.
REASONS: Final = (
    "header_size",  # stream header too large
    "stanza_size",  # stanza too large (before or after authentication)
    "depth",  # elements nested too deep
    "elements",  # too many elements in one stanza
    "attributes",  # too many attributes on one element
    "namespace_declarations",  # too many xmlns declarations on one element
    "restricted_xml",  # DTD, entity, comment, processing instruction (RFC 6120 §11.1)
    "not_well_formed",  # malformed XML, invalid UTF-8, forbidden characters
    "unsupported_encoding",  # an XML declaration naming another encoding than UTF-8
    "connections_per_ip",  # too many unauthenticated connections from one address
    "connection_rate_per_ip",  # too many new connections per second from one address
    "auth_ban",  # a connection from an address banned for failed authentications
    "auth_failures_per_ip",  # an address got banned
    "resources_per_account",  # a bind refused: the account has too many resources
    "send_queue",  # a client that does not read closed (slow consumer)
    "memory",  # a connection refused while the process is over its memory limit
)

# Parser texts of policy-violation (roost.xml.parser) -> reason.
_PARSER_REASONS: Final = {
    "stream header too large": "header_size",
    "stanza too large": "stanza_size",
    "too deep": "depth",
    "too many elements": "elements",
    "too many attributes": "attributes",
    "too many namespace declarations": "namespace_declarations",
}


def parse_rejection(error: StreamError) -> str:
    """The reason label for input the parser refused."""
    if error.condition == "policy-violation":
        reason = _PARSER_REASONS.get(error.text or "")
        if reason is not None:
            return reason
    return error.condition.replace("-", "_")


class Metrics:
    """Plain counters, cheap to bump; read by the collector at scrape time."""

    __slots__ = (
        "auth_failures",
        "connections_accepted",
        "read_throttles",
        "rejections",
        "stanzas_in",
        "stanzas_out",
        "stream_errors",
    )

    def __init__(self) -> None:
        self.rejections: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.stream_errors: dict[str, int] = {}
        self.auth_failures: dict[str, int] = {}
        self.connections_accepted = 0
        self.stanzas_in = 0
        self.stanzas_out = 0
        self.read_throttles = 0

    def rejected(self, reason: str) -> None:
        """A limit refused something (one of ``REASONS``, or a parser condition)."""
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def stream_error(self, condition: str) -> None:
        """A stream was closed with this error condition."""
        self.stream_errors[condition] = self.stream_errors.get(condition, 0) + 1

    def auth_failed(self, condition: str) -> None:
        """A SASL attempt failed with this condition."""
        self.auth_failures[condition] = self.auth_failures.get(condition, 0) + 1


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in sorted(values.items()):
        family.add_metric([value], count)
    return family


class ServerCollector(Collector):
    """The server's counters and gauges, read when scraped."""

    def __init__(self, core: ServerCore) -> None:
        self._core = core

    def collect(self) -> Iterable[Metric]:
        """Metric families for one scrape."""
        core = self._core
        m = core.limiter.metrics
        yield _labelled(
            "roost_limit_rejections",
            "Input refused or connections closed by a limit, by reason.",
            "reason",
            m.rejections,
        )
        yield _labelled(
            "roost_stream_errors", "Stream errors sent, by condition.", "condition", m.stream_errors
        )
        yield _labelled(
            "roost_auth_failures", "Failed SASL attempts.", "condition", m.auth_failures
        )
        counters = (
            ("roost_read_throttles", "Times reading paused for the read rate.", m.read_throttles),
            ("roost_connections_accepted", "Client connections accepted.", m.connections_accepted),
            ("roost_stanzas_received", "Stanzas received from clients.", m.stanzas_in),
            ("roost_stanzas_sent", "Stanzas sent to clients.", m.stanzas_out),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        yield from self._gauges(core)

    def _gauges(self, core: ServerCore) -> Iterable[Metric]:
        unauthenticated = sum(1 for s in core.connections if s.authenticated_at == 0.0)
        gauges = (
            ("roost_connections", "Client connections open.", len(core.connections)),
            ("roost_connections_unauthenticated", "Not authenticated yet.", unauthenticated),
            ("roost_sessions", "Bound client sessions.", len(core.sessions)),
            ("roost_memory_shedding", "1 while new connections are refused for memory.",
             int(core.limiter.shedding)),
        )  # fmt: skip
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        limits = GaugeMetricFamily("roost_limit", "Configured limits ([limits]).", labels=["name"])
        config = core.config.limits
        for f in fields(config):
            value = getattr(config, f.name)
            if type(value) is int:
                limits.add_metric([f.name], value)
        yield limits


def metrics_registry(core: ServerCore) -> CollectorRegistry:
    """A registry of its own for this server: its counters and the process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(core))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of everything in ``registry``."""
    return generate_latest(registry)
