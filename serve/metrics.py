"""The server's Prometheus metrics: requests by endpoint and status, latency, requests in flight,
rows per graph step, tokens.

The hot path counts in plain Python numbers (a dict entry, a bucket index by bisection) and
prometheus_client reads them only when /metrics is scraped, through a collector of our own (its
documented way for numbers kept elsewhere). Its Counter and Histogram take a lock per change: at
n=1 their five or so calls a request were ~4% of the server's time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Histogram:
    """Observations by bucket (``le`` the bucket's upper bound, as Prometheus counts them) and
    their sum; ``counts[-1]`` holds those above every bound."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds, self.counts, self.sum = bounds, [0] * (len(bounds) + 1), 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative counts by ``le``, +Inf last, as the exposition format has them."""
        total, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            total += count
            out.append((floatToGoString(bound), total))
        return out


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, in_flight: Callable[[], int] = lambda: 0):
        self.in_flight = in_flight  # completion requests admitted, their samples not yet all drawn
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)  # (endpoint, status) -> answered
        self.latency: dict[str, Histogram] = {}  # endpoint -> seconds from the request to its answer's end
        self.batch_rows = Histogram(ROW_BUCKETS)  # rows of each graph step (or first draw)
        self.tokens = {"prompt": 0, "completion": 0}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def answered(self, endpoint: str, status: int, seconds: float | None) -> None:
        self.requests[endpoint, status] += 1
        if seconds is not None:
            histogram = self.latency.get(endpoint)
            if histogram is None:
                histogram = self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
            histogram.observe(seconds)

    def counted(self, prompt: int, completion: int) -> None:
        self.tokens["prompt"] += prompt
        self.tokens["completion"] += completion

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's collector protocol: the families, read at each scrape."""
        requests = CounterMetricFamily("mgpt_requests", "HTTP requests answered, by endpoint and status",
                                       labels=["endpoint", "status"])
        for (endpoint, status), count in list(self.requests.items()):
            requests.add_metric([endpoint, str(status)], count)
        yield requests
        latency = HistogramMetricFamily("mgpt_request_seconds", "Time from a request's body to its last byte, "
                                        "by endpoint", labels=["endpoint"])
        for endpoint, histogram in list(self.latency.items()):
            latency.add_metric([endpoint], histogram.buckets(), histogram.sum)
        yield latency
        yield GaugeMetricFamily("mgpt_queue_depth", "Completion requests in flight: admitted, their samples "
                                "not yet all drawn", value=self.in_flight())
        rows = HistogramMetricFamily("mgpt_batch_rows", "Rows in one graph step (or first draw) of the batcher")
        rows.add_metric([], self.batch_rows.buckets(), self.batch_rows.sum)
        yield rows
        tokens = CounterMetricFamily("mgpt_tokens", "Tokens: prompt (BOS and the prompt's characters, once per "
                                     "choice) and completion (draws, each ending BOS included)", labels=["kind"])
        for kind, count in self.tokens.items():
            tokens.add_metric([kind], count)
        yield tokens

    def render(self) -> bytes:
        return generate_latest(self.registry)
