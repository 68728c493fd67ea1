"""Prometheus metrics: requests by route and status, latency, time in the model, admission
control and the model's lifecycle.

With several worker processes (``vae-serve --workers N``) every process writes its values to
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by ``vae-serve``)
and ``/metrics`` adds them up, so one scrape shows the whole server, not one worker.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")

REQUESTS = Counter("vae_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "vae_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INFERENCE = Histogram(
    "vae_inference_seconds",
    "Time in the SavedModel per (batched) call",
    ["signature"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
BATCH_REQUESTS = Histogram(
    "vae_batch_requests",
    "Requests merged into one SavedModel call",
    ["signature"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
IMAGES = Counter("vae_images_total", "Images generated, decoded or encoded", ["endpoint"])
DROPPED = Counter(
    "vae_dropped_calls_total",
    "Queued work dropped unrun (deadline or client gone)",
    ["signature"],
)
REFUSED = Counter(
    "vae_refused_requests_total",
    "Requests answered 503 by admission control",
    ["endpoint", "reason"],
)
QUEUED_ROWS = Gauge(
    "vae_admitted_rows",
    "Rows (images) admitted and not yet answered",
    multiprocess_mode="livesum",
)
QUEUE_CAPACITY = Gauge("vae_admitted_rows_limit", "VAE_MAX_QUEUE_ROWS", multiprocess_mode="livesum")
MODEL_READY = Gauge(
    "vae_model_ready", "1 when a model version is loaded and warm", multiprocess_mode="livemin"
)
SERVING_VERSION = Gauge(
    "vae_model_serving_version",
    "The version unversioned requests get",
    multiprocess_mode="livemax",
)
UPLOADS_DECODED = Counter(
    "vae_upload_images_decoded_total", "Uploaded images decoded (made MNIST-like)"
)
UPLOADS_DECODING = Gauge(
    "vae_upload_images_decoding",
    "Uploaded images being decoded now",
    multiprocess_mode="livesum",
)
KEY_REQUESTS = Counter("vae_key_requests_total", "Requests by API key name", ["key"])
CLIENT_REFUSED = Counter(
    "vae_client_refused_total",
    "Requests or connections answered 429: a client over its share",
    ["limit"],
)
LOAD_FAILURES = Counter(
    "vae_model_load_failures_total", "Model versions that failed to load", ["code"]
)

Metric = TypeVar("Metric", bound=MetricWrapperBase)


@functools.lru_cache(maxsize=1024)
def child(metric: Metric, *values: str) -> Metric:
    """``metric.labels(*values)``, looked up once: ``labels`` checks its arguments and takes a
    lock on every call, and the request path calls it several times a request."""
    return metric.labels(*values)


def exposition() -> tuple[bytes, str]:
    """The metrics page: this process's, or every worker's added up in multiprocess mode."""
    if directory := os.environ.get(MULTIPROCESS_DIR):
        forget_dead_workers(Path(directory))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that no longer exist. A worker that exits cleanly drops
    its own (``worker_exited``), but one that uvicorn killed (it missed its health pings) leaves
    them behind, and they would count forever: a 0 in ``vae_model_ready``, an extra worker's
    share in ``vae_admitted_rows_limit``."""
    pids = {
        int(match[1])
        for f in directory.glob("gauge_live*.db")
        if (match := LIVE_FILE.match(f.name))
    }
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def worker_exited(pid: int) -> None:
    """Drop a stopped worker's live gauges (multiprocess mode only)."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(pid)
