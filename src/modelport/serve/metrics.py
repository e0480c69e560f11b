"""Prometheus metrics of one server process."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 10000)


class Metrics:
    """Requests, latency, errors by status, batch sizes and loaded models."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestStats()
        self.registry.register(self.requests)
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
        self.load_failures = Counter(
            "modelport_model_load_failures",
            "Model versions that failed to load",
            ["model"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestStats:
    """Requests answered (by route, model and status) and their latency (by route).

    Kept as plain numbers, updated on the event loop only: prometheus_client's labelled
    Counter and Histogram take a lock per update, which bench/profile_request.py measured at
    ~4 µs per request; this collector turns the numbers into the same metric families when
    /metrics is read.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}
        """route -> a count per bucket of LATENCY_BUCKETS, one for +Inf, then the sum."""

    def observe(self, route: str, model: str, status: int, seconds: float) -> None:
        key = (route, model, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        latency = self.latency.get(route)
        if latency is None:
            latency = self.latency[route] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
        latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # a bucket counts values <= its le
        latency[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelport_requests", "Requests answered", labels=["route", "model", "status"]
        )
        for (route, model, status), count in list(self.counts.items()):
            requests.add_metric([route, model, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "modelport_request_seconds", "Time to answer a request", labels=["route"]
        )
        for route, counts in list(self.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=False):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([route], buckets, counts[-1])
        yield latency
