"""The server's Prometheus metrics (prometheus_client, its own registry per app): requests by
endpoint and status, latency, requests in flight, rows per graph step, tokens."""

from __future__ import annotations

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)

disable_created_metrics()  # no *_created series: a scrape's size halves, and Prometheus does not read them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("mgpt_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=registry)
        self.latency = Histogram("mgpt_request_seconds", "Time from a request's body to its last byte, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry)
        self.queue = Gauge("mgpt_queue_depth", "Completion requests in flight: admitted, their samples not yet all drawn",
                           registry=registry)
        self.batch_rows = Histogram("mgpt_batch_rows", "Rows in one graph step (or first draw) of the batcher",
                                    buckets=ROW_BUCKETS, registry=registry)
        self.tokens = Counter("mgpt_tokens", "Tokens: prompt (BOS and the prompt's characters, once per "
                              "choice) and completion (draws, each ending BOS included)", ["kind"], registry=registry)
        self.prompt_tokens, self.completion_tokens = self.tokens.labels("prompt"), self.tokens.labels("completion")
        self._requests = {}  # (endpoint, status) -> the child counter: labels() costs more than inc()
        self._latency = {}

    def answered(self, endpoint: str, status: int, seconds: float | None) -> None:
        key = (endpoint, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(endpoint, str(status))
        counter.inc()
        if seconds is not None:
            histogram = self._latency.get(endpoint)
            if histogram is None:
                histogram = self._latency[endpoint] = self.latency.labels(endpoint)
            histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
