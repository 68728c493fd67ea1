"""Server-side batching: every call of one model version runs on its inference thread, and the
requests that arrive while it is busy are merged into one call per signature.

A SavedModel call costs a few hundred microseconds whatever its batch size, so under load the
service answers many requests for the price of one call (as TensorFlow Serving's batching
does), and TensorFlow never runs concurrent calls that fight over the CPU's cores. Nothing
waits for a batch to fill: a request alone runs at once.

Fairness: a request is cut into calls of at most ``max_rows`` rows, and a round serves the
chunks queued before it in arrival order, so a small request waits behind at most one round.
A request that was cancelled (deadline, client gone) before its turn is dropped unrun.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app import metrics
from app.serving.errors import BatcherClosed

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]


class Model(Protocol):
    """What the batcher needs of a model version."""

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> Outputs: ...


class Answer(Protocol):
    """The response-encoding stage of a request: turns its rows of outputs into the answer.
    Small answers are encoded on the inference thread, right after their call."""

    def heavy(self, rows: int) -> bool: ...

    def encode(self, outputs: Outputs) -> Any: ...


@dataclass(eq=False)
class Job:
    """One request's rows for one signature (or a chunk of them), and where its answer goes."""

    signature: str
    inputs: dict[str, np.ndarray]  # batched inputs: one row per example
    constants: tuple[tuple[str, Any], ...]  # scalar inputs: the job runs alone
    rows: int
    answer: Answer | None
    future: asyncio.Future = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)

    @property
    def mergeable(self) -> bool:
        return not self.constants

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand the answer to the request's event loop (thread-safe)."""
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # that loop is closed: nobody waits for this answer any more
            log.debug("dropped the answer to a %s request whose loop is closed", self.signature)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile (deadline, client gone)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Batcher:
    """Runs one model version's calls on its own thread; ``await run(...)`` from handlers."""

    def __init__(self, model: Model, max_rows: int = 256, name: str = "inference"):
        self.model = model
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def run(
        self,
        signature: str,
        inputs: dict[str, np.ndarray],
        answer: Answer | None = None,
    ) -> Any:
        """Call ``signature`` on these inputs, merged with whatever else is waiting.

        Only requests whose inputs all have a row per example (first dimension) are merged
        with others: a signature with scalar inputs (``log_weights``' seed, ``sample``'s
        count) may draw its noise for the whole batch, so its rows would change with the
        company they keep; such a request has a call of its own, whole. Returns
        ``answer.encode(outputs)`` for these rows (computed on the inference thread), or the
        outputs themselves. A mergeable request of more than ``max_rows`` rows runs as several
        calls, its outputs concatenated.
        """
        if self._closed:
            raise BatcherClosed("this model version is being unloaded")
        batched = {k: v for k, v in inputs.items() if np.ndim(v) > 0}
        constants = tuple(sorted((k, v.item()) for k, v in inputs.items() if np.ndim(v) == 0))
        rows = len(next(iter(batched.values()))) if batched else 0
        if rows <= self.max_rows or constants:
            return await self._submit(signature, batched, constants, rows, answer)
        parts = [
            self._submit(
                signature,
                {k: v[start : start + self.max_rows] for k, v in batched.items()},
                constants,
                min(self.max_rows, rows - start),
                None,
            )
            for start in range(0, rows, self.max_rows)
        ]
        chunks = await asyncio.gather(*parts)
        outputs = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
        return answer.encode(outputs) if answer else outputs

    def _submit(
        self,
        signature: str,
        inputs: dict[str, np.ndarray],
        constants: tuple[tuple[str, Any], ...],
        rows: int,
        answer: Answer | None,
    ) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(Job(signature, inputs, constants, rows, answer, future, loop))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls, finish the queued ones, then stop the thread."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            pending = [job]
            stop = False
            while True:  # everything that arrived while the previous call ran
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                pending.append(job)
            for batch in self._batches(pending):
                self._run_batch(batch)
            if stop:
                return

    def _batches(self, jobs: list[Job]) -> list[list[Job]]:
        """Jobs still wanted, merged by signature in arrival order, at most ``max_rows`` rows
        a call; a job with scalar inputs alone."""
        groups: dict[str, list[list[Job]]] = {}
        alone: list[list[Job]] = []
        for job in jobs:
            if job.future.cancelled():  # gone before its turn: never run (a benign race)
                metrics.DROPPED.labels(job.signature).inc()
                continue
            if not job.mergeable:
                alone.append([job])
                continue
            batches = groups.setdefault(job.signature, [[]])
            if batches[-1] and sum(j.rows for j in batches[-1]) + job.rows > self.max_rows:
                batches.append([])
            batches[-1].append(job)
        return [batch for batches in groups.values() for batch in batches] + alone

    def _run_batch(self, jobs: list[Job]) -> None:
        signature = jobs[0].signature
        try:
            if len(jobs) == 1:  # alone: its arrays as they are
                inputs = {**jobs[0].inputs, **dict(jobs[0].constants)}
            else:
                inputs = {
                    name: np.concatenate([j.inputs[name] for j in jobs]) for name in jobs[0].inputs
                }
            with metrics.child(metrics.INFERENCE, signature).time():
                outputs = self.model.call(signature, inputs)
            metrics.child(metrics.BATCH_REQUESTS, signature).observe(len(jobs))
        except Exception as error:  # noqa: BLE001 - reported to the requests that asked
            if len(jobs) > 1:  # one bad request must not fail the others merged with it
                for job in jobs:
                    self._run_batch([job])
                return
            log.info("%s call failed: %s", signature, error)
            jobs[0].resolve(error=error)
            return
        start = 0
        for job in jobs:
            if len(jobs) == 1:  # a call of its own (always so for scalar inputs): all its
                rows = outputs
            else:
                rows = {name: value[start : start + job.rows] for name, value in outputs.items()}
                start += job.rows
            try:
                job.resolve(job.answer.encode(rows) if job.answer else rows)
            except Exception as error:  # noqa: BLE001 - an encoding bug fails its request only
                log.exception("encoding the answer to a %s request failed", signature)
                job.resolve(error=error)
