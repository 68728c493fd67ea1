"""Metrics over worker processes (prometheus-client's multiprocess mode): a worker that was
killed, and so never dropped its own live gauges, stops counting at the next scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app import metrics

ROOT = Path(__file__).resolve().parents[2]

# A worker that sets its gauges (as app.main does at start) and then stays up or dies by SIGKILL.
WORKER = """
import os, signal, sys, time
from app import metrics
metrics.QUEUE_CAPACITY.set(4096)
metrics.MODEL_READY.set(int(sys.argv[1]))
print("ready", flush=True)
if sys.argv[2] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


def start_worker(directory: Path, ready: int, fate: str) -> subprocess.Popen:
    env = {**os.environ, metrics.MULTIPROCESS_DIR: str(directory), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(ready), fate], env=env, stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    return worker


def scrape(monkeypatch, directory: Path) -> dict[str, float]:
    monkeypatch.setenv(metrics.MULTIPROCESS_DIR, str(directory))
    page, _ = metrics.exposition()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(page.decode())
        for sample in family.samples
    }


def test_a_killed_worker_stops_counting_in_the_live_gauges(tmp_path, monkeypatch):
    alive = start_worker(tmp_path, ready=1, fate="alive")
    killed = start_worker(tmp_path, ready=0, fate="killed")
    try:
        killed.wait(10)
        values = scrape(monkeypatch, tmp_path)
        assert values["vae_admitted_rows_limit"] == 4096  # the live worker's share only
        assert values["vae_model_ready"] == 1  # the dead worker's 0 no longer wins the min
        assert not list(tmp_path.glob(f"gauge_live*_{killed.pid}.db"))
        assert list(tmp_path.glob(f"gauge_live*_{alive.pid}.db"))
    finally:
        alive.kill()
        alive.wait(10)
