"""Prometheus metrics for HTTP traffic and background work."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

registry = CollectorRegistry(auto_describe=True)

http_requests = Counter(
    "siyu_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"], registry=registry
)
http_latency = Histogram(
    "siyu_http_request_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=registry,
)
outbox_processed = Counter("siyu_outbox_events_total", "Outbox events processed", ["topic", "result"], registry=registry)


def render() -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
