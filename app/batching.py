"""Server-side batching: every model call runs on one inference thread, and the requests that
arrive while it is busy are merged into one call per signature.

A SavedModel call costs a few hundred microseconds whatever its batch size, so under load the
service answers many requests for the price of one call (as TensorFlow Serving's batching
does), and TensorFlow never runs concurrent calls that fight over the CPU's cores. Nothing
waits for a batch to fill: a request alone runs at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app import metrics
from app.model import VaeModel

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]


@dataclass
class Job:
    """One request's rows for one signature, and where its answer goes."""

    signature: str
    inputs: dict[str, np.ndarray]  # every array has one row per image
    then: Callable[[Outputs], Any] | None
    future: asyncio.Future = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand the answer to the request's event loop (thread-safe)."""
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # that loop is closed: nobody waits for this answer any more
            log.debug("dropped the answer to a %s request whose loop is closed", self.signature)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Batcher:
    """Runs ``model`` calls on its own thread; ``await run(...)`` from request handlers."""

    def __init__(self, model: VaeModel, max_rows: int = 1024):
        self.model = model
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="inference", daemon=True)
        self._thread.start()

    async def run(
        self, signature: str, then: Callable[[Outputs], Any] | None = None, **inputs: np.ndarray
    ) -> Any:
        """Call ``signature`` on these rows, merged with whatever else is waiting, and return
        its outputs for these rows, or ``then(outputs)`` computed on the inference thread
        (e.g. PNG encoding, which would otherwise hold up the event loop)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(Job(signature, inputs, then, future, loop))
        return await future

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued calls, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            pending = [job]
            while True:  # everything that arrived while the previous call ran
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # stop after this round
                    break
                pending.append(job)
            for batch in self._batches(pending):
                self._run_batch(batch)

    def _batches(self, jobs: list[Job]) -> list[list[Job]]:
        """Group by signature, in arrival order, at most ``max_rows`` rows a call (a larger
        request runs alone)."""
        batches: list[list[Job]] = []
        for signature in dict.fromkeys(job.signature for job in jobs):
            batch: list[Job] = []
            rows = 0
            for job in (j for j in jobs if j.signature == signature):
                if batch and rows + job.rows > self.max_rows:
                    batches.append(batch)
                    batch, rows = [], 0
                batch.append(job)
                rows += job.rows
            batches.append(batch)
        return batches

    def _run_batch(self, jobs: list[Job]) -> None:
        try:
            signature = jobs[0].signature
            inputs = {name: np.concatenate([j.inputs[name] for j in jobs])
                      for name in jobs[0].inputs}
            with metrics.INFERENCE.labels(signature).time():
                outputs = self.model.call(signature, **inputs)
            metrics.BATCH_REQUESTS.labels(signature).observe(len(jobs))
        except Exception as error:  # noqa: BLE001 - reported to the requests that asked
            if len(jobs) > 1:  # one bad request must not fail the others merged with it
                for job in jobs:
                    self._run_batch([job])
                return
            log.exception("%s call failed", jobs[0].signature)
            jobs[0].resolve(error=error)
            return
        start = 0
        for job in jobs:
            rows = {name: value[start : start + job.rows] for name, value in outputs.items()}
            start += job.rows
            try:
                job.resolve(job.then(rows) if job.then else rows)
            except Exception as error:  # noqa: BLE001
                job.resolve(error=error)
