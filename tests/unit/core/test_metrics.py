"""Metrics: every parser limit has its reason; the registry renders counters and gauges."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from roost.config import Config
from roost.core.limits import Limiter
from roost.core.metrics import REASONS, metrics_registry, parse_rejection, render
from roost.errors import StreamError
from roost.xml.ns import NS_CLIENT
from roost.xml.parser import StreamParser
from roost.xml.serializer import stream_header

HEADER = stream_header(content_ns=NS_CLIENT, attrs={"to": "example.com", "version": "1.0"})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (stream_header(content_ns=NS_CLIENT, attrs={"x": "a" * 200}), "header_size"),
        (HEADER + b"<message>" + b"a" * 300 + b"</message>", "stanza_size"),
        (HEADER + b"<a><b><c><d><e/></d></c></b></a>", "depth"),
        (HEADER + b"<message>" + b"<x/>" * 9 + b"</message>", "elements"),
        (HEADER + b"<message a='1' b='2' c='3' d='4'/>", "attributes"),
        (HEADER + b"<message xmlns:a='a' xmlns:b='b' xmlns:c='c'/>", "namespace_declarations"),
        (HEADER + b"<!-- comment -->", "restricted_xml"),
        (HEADER + b"<<", "not_well_formed"),
        (b"<?xml version='1.0' encoding='latin-1'?>", "unsupported_encoding"),
    ],
)
def test_every_parser_refusal_has_its_reason(data: bytes, reason: str) -> None:
    parser = StreamParser(
        max_stanza_bytes=200,
        max_depth=4,
        max_header_bytes=150,
        max_elements=8,
        max_attrs=3,
        max_ns_decls=2,
    )
    with pytest.raises(StreamError) as refused:
        parser.feed(data)
    assert parse_rejection(refused.value) == reason
    assert reason in REASONS


def fake_core() -> Any:
    config = Config(path=Path("roost.toml"))
    limiter = Limiter(config.limits)
    sessions = [SimpleNamespace(authenticated_at=0.0), SimpleNamespace(authenticated_at=5.0)]
    return SimpleNamespace(
        config=config, limiter=limiter, connections=sessions, sessions=[sessions[1]]
    )


def scrape(core: Any) -> dict[str, float]:
    """Every sample of one scrape: "name{label=value}" -> value."""
    text = render(metrics_registry(cast(Any, core))).decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_scrape_has_rejections_by_reason_from_zero_and_the_gauges() -> None:
    core = fake_core()
    metrics = core.limiter.metrics
    metrics.rejected("stanza_size")
    metrics.rejected("stanza_size")
    metrics.stream_error("policy-violation")
    metrics.auth_failed("not-authorized")
    metrics.stanzas_in += 7
    metrics.read_throttles += 1
    samples = scrape(core)
    assert samples["roost_limit_rejections_total{reason=stanza_size}"] == 2
    assert all(f"roost_limit_rejections_total{{reason={r}}}" in samples for r in REASONS)
    assert samples["roost_limit_rejections_total{reason=send_queue}"] == 0
    assert samples["roost_stream_errors_total{condition=policy-violation}"] == 1
    assert samples["roost_auth_failures_total{condition=not-authorized}"] == 1
    assert samples["roost_stanzas_received_total"] == 7
    assert samples["roost_read_throttles_total"] == 1
    assert samples["roost_connections"] == 2
    assert samples["roost_connections_unauthenticated"] == 1
    assert samples["roost_sessions"] == 1
    assert samples["roost_memory_shedding"] == 0
    assert samples["roost_limit{name=read_rate}"] == 10240
    assert samples["roost_limit{name=send_queue_stanzas}"] == 10000


def test_two_servers_count_apart() -> None:
    first, second = fake_core(), fake_core()
    first.limiter.metrics.rejected("depth")
    assert scrape(first)["roost_limit_rejections_total{reason=depth}"] == 1
    assert scrape(second)["roost_limit_rejections_total{reason=depth}"] == 0
