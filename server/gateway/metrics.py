"""The gateway's Prometheus registry: requests, latency, tokens, restarts and translations."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from starlette.types import Scope

__all__ = ["Metrics", "TranslationCollector", "count_tokens", "route_label"]


class Metrics:
    """Every metric the gateway exposes at ``/metrics``, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "babelcap_requests_total",
            "Requests by route, model and status",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "babelcap_request_seconds",
            "Request latency by route and model",
            ["route", "model"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "babelcap_requests_in_flight", "Requests being served", registry=self.registry
        )
        self.tokens = Counter(
            "babelcap_tokens_total",
            "Tokens by model and kind (prompt, completion)",
            ["model", "kind"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "babelcap_backend_restarts_total", "Backend restarts", ["model"], registry=self.registry
        )


class TranslationCollector:
    """Exposes the translation engine's own sentence count at scrape time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Any:
        """The sentence counter, read now."""
        yield CounterMetricFamily(
            "babelcap_translation_sentences",
            "Sentences x languages translated",
            value=self.engine.sentences_total,
        )


def route_label(scope: Scope) -> str:
    """A request's ``route`` label: the template of the route that served it
    (``/metrics/backends/{model}``), never the raw path, so that random paths add no series."""
    path: str = scope["path"]
    if path == "/v1/chat/completions":  # the relay, past the router
        return path
    template: object = getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else "unmatched"


def count_tokens(metrics: Metrics, model: str, content: bytes) -> None:
    """Add a chat completion's ``usage`` (a JSON body or one SSE data chunk) to the counters."""
    try:
        usage = json.loads(content).get("usage") or {}
    except (json.JSONDecodeError, AttributeError):
        return
    metrics.tokens.labels(model, "prompt").inc(usage.get("prompt_tokens") or 0)
    metrics.tokens.labels(model, "completion").inc(usage.get("completion_tokens") or 0)
