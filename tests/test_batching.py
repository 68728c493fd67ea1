"""The batcher on a real trained model: merged calls give each request exactly what it would
get alone, and one bad request cannot fail the others."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from app.batching import Batcher, Job
from app.model import VaeModel, sample_rows


class CountingModel(VaeModel):
    """The real model, counting the rows of each call it makes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, int]] = []

    def call(self, signature, **inputs):
        self.calls.append((signature, len(next(iter(inputs.values())))))
        return super().call(signature, **inputs)


@pytest.fixture(scope="module")
def model(version_dir):
    return CountingModel(version_dir, "/CPU:0")


async def with_busy_worker(batcher: Batcher, submit):
    """Hold the inference thread on a first job while ``submit()`` queues more, so that what
    it queued is merged when the thread is released."""
    release = threading.Event()
    first = asyncio.ensure_future(
        batcher.run("decode", then=lambda out: release.wait(10), z=np.zeros((1, 20), np.float32))
    )
    await asyncio.sleep(0.2)  # the worker is now inside `then`, waiting
    pending = submit()
    release.set()
    await first
    return await asyncio.gather(*pending, return_exceptions=True)


def test_concurrent_requests_are_merged_and_match_single_calls(model):
    requests = [(1, 5, 1.0, None), (3, 6, 0.7, 2), (2, 5, 1.0, None), (4, 99, 0.0, 9)]
    expected = [model.call("sample_batch", **sample_rows(*r)) for r in requests]
    batcher = Batcher(model)
    model.calls.clear()
    try:
        results = asyncio.run(with_busy_worker(batcher, lambda: [
            asyncio.ensure_future(batcher.run("sample_batch", **sample_rows(*r)))
            for r in requests
        ]))
    finally:
        batcher.close()
    assert ("sample_batch", 10) in model.calls  # four requests, ten rows, one call
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got["latents"], want["latents"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["images"], want["images"], rtol=1e-5, atol=1e-6)


def test_a_bad_request_fails_alone(model):
    batcher = Batcher(model)
    good = np.zeros((2, 20), np.float32)

    def submit():
        return [
            asyncio.ensure_future(batcher.run("decode", z=good)),
            asyncio.ensure_future(batcher.run("decode", z=np.zeros((1, 7), np.float32))),
            asyncio.ensure_future(batcher.run("decode", then=lambda out: 1 / 0, z=good)),
            asyncio.ensure_future(batcher.run("decode", then=lambda out: out["images"].shape,
                                              z=good)),
        ]

    try:
        ok, wrong_shape, failing_render, rendered = asyncio.run(with_busy_worker(batcher, submit))
    finally:
        batcher.close()
    assert ok["images"].shape == (2, 28, 28)
    assert isinstance(wrong_shape, Exception)
    assert isinstance(failing_render, ZeroDivisionError)
    assert rendered == (2, 28, 28)


def test_large_requests_are_split_across_calls(model):
    batcher = Batcher(model, max_rows=4)
    model.calls.clear()

    def submit():
        return [asyncio.ensure_future(batcher.run("decode", z=np.zeros((n, 20), np.float32)))
                for n in (3, 3, 6)]

    try:
        results = asyncio.run(with_busy_worker(batcher, submit))
    finally:
        batcher.close()
    assert [len(r["images"]) for r in results] == [3, 3, 6]
    assert model.calls[-3:] == [("decode", 3), ("decode", 3), ("decode", 6)]


def test_close_finishes_queued_work_then_stops_the_thread(model):
    batcher = Batcher(model)

    async def go():
        return await batcher.run("decode", z=np.zeros((1, 20), np.float32))

    assert asyncio.run(go())["images"].shape == (1, 28, 28)
    batcher.close()
    assert not batcher._thread.is_alive()


def test_an_answer_for_a_closed_loop_does_not_stop_the_thread(model):
    batcher = Batcher(model)

    async def go(rows):
        return await batcher.run("decode", z=np.zeros((rows, 20), np.float32))

    loop = asyncio.new_event_loop()
    orphan = Job("decode", {"z": np.zeros((1, 20), np.float32)}, None, loop.create_future(), loop)
    loop.close()
    batcher._queue.put(orphan)  # as if its request's loop had gone away meanwhile
    try:
        assert asyncio.run(go(2))["images"].shape == (2, 28, 28)
    finally:
        batcher.close()
