"""``Metrics``: the service's Prometheus metrics, in a collector registry of its own (one per app).

Exposed on ``GET /metrics`` in Prometheus text format:

- ``tvmedge_requests_total{endpoint, model, status}``: requests answered;
- ``tvmedge_request_seconds{endpoint}``: whole-request latency; ``tvmedge_inference_seconds{model}``: model runs;
- ``tvmedge_models_loaded``, ``tvmedge_model_in_flight{model}``, ``tvmedge_rss_bytes``, plus the standard
  ``process_*`` metrics (CPU seconds, resident memory, open fds).

The ``model`` label only takes names of models that exist, so clients cannot grow the label set at will.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..errors import TvmedgeError
from .memory import rss_bytes

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and histograms for one app; ``render()`` gives the ``/metrics`` body.

    Parameters
    ----------
    registry : ModelRegistry
        Read at scrape time for loaded models and in-flight counts.
    """

    def __init__(self, registry):
        self.models = registry
        self.collectors = CollectorRegistry()
        self.requests = Counter("tvmedge_requests", "HTTP requests answered.", ["endpoint", "model", "status"],
                                registry=self.collectors)
        self.request_seconds = Histogram("tvmedge_request_seconds", "Whole-request latency.", ["endpoint"],
                                         buckets=_BUCKETS, registry=self.collectors)
        self.inference_seconds = Histogram("tvmedge_inference_seconds", "Model run latency (decode + run).", ["model"],
                                           buckets=_BUCKETS, registry=self.collectors)
        Gauge("tvmedge_models_loaded", "Models loaded and ready.", registry=self.collectors).set_function(
            lambda: len(self.models.loaded()))
        Gauge("tvmedge_rss_bytes", "Resident memory of the service.", registry=self.collectors).set_function(
            lambda: rss_bytes() or 0)
        ProcessCollector(registry=self.collectors)
        self.collectors.register(_InFlight(registry))

    def model_label(self, name) -> str:
        """``name`` if it is a model under the directory, else ``"-"`` (bounded label values)."""
        if name is None:
            return "-"
        try:
            self.models.path_of(name)
        except TvmedgeError:
            return "-"
        return name

    def render(self) -> bytes:
        return generate_latest(self.collectors)


class _InFlight:
    """Per-model in-flight requests, read from the registry at scrape time."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        family = GaugeMetricFamily("tvmedge_model_in_flight", "Requests admitted and not yet answered.", labels=["model"])
        for record in self.registry.status():
            if record["state"] != "available":
                family.add_metric([record["name"]], record["in_flight"])
        yield family
