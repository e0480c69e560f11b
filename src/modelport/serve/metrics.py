"""Prometheus metrics of one server process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 10000)


class Metrics:
    """Requests, latency, errors by status, batch sizes and loaded models."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelport_requests",
            "Requests answered",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelport_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "modelport_batch_rows",
            "Rows per onnxruntime call (after dynamic batching)",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.loaded = Gauge(
            "modelport_loaded_models", "Model versions loaded in memory", registry=self.registry
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.load_failures = Counter(
            "modelport_model_load_failures",
            "Model versions that failed to load",
            ["model"],
            registry=self.registry,
        )

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        """Count one answered request (label lookups are cached: they cost ~5 µs each)."""
        key = (route, model, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route, model, str(status)),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
