"""The batcher, on the NumPy stand-in: merged calls give each request its own rows, large
requests are cut into fair calls, abandoned work is dropped unrun, one bad request fails
alone. The same on a real SavedModel, byte for byte: ``tests/e2e/test_batching.py``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.api.latent import sample_rows
from app.serving.batching import Batcher, Job
from tests.support.batching import REQUESTS, Hold, generate_all, while_busy
from tests.support.fakes import FakeModel


@pytest.fixture
def model():
    return FakeModel()


@pytest.fixture
def batcher(model):
    batcher = Batcher(model, max_rows=256)
    yield batcher
    batcher.close()


def test_concurrent_requests_are_merged_and_match_single_calls(model, batcher):
    expected = [model.call("sample_batch", sample_rows(*r)) for r in REQUESTS]
    model.calls.clear()
    results = asyncio.run(while_busy(batcher, lambda: generate_all(batcher)))
    assert model.calls[-1] == ("sample_batch", 10)  # four requests, ten rows, one call
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got["latents"], want["latents"])  # drawn row by row
        # The stand-in's images are one matrix product for all rows, whose BLAS kernel may
        # change with the row count (1 ulp on some CPUs): equal within float32 rounding.
        np.testing.assert_allclose(got["images"], want["images"], rtol=1e-6, atol=1e-7)


class Fails:
    def heavy(self, rows: int) -> bool:
        return False

    def encode(self, outputs):
        raise ZeroDivisionError


class Shape:
    def heavy(self, rows: int) -> bool:
        return False

    def encode(self, outputs):
        return outputs["images"].shape


def test_a_bad_request_fails_alone(batcher):
    good = {"z": np.zeros((2, 20), np.float32)}
    ok, wrong_shape, failing_answer, answered = asyncio.run(
        while_busy(
            batcher,
            lambda: [
                asyncio.ensure_future(batcher.run("decode", good)),
                asyncio.ensure_future(batcher.run("decode", {"z": np.zeros((1, 7), np.float32)})),
                asyncio.ensure_future(batcher.run("decode", good, Fails())),
                asyncio.ensure_future(batcher.run("decode", good, Shape())),
            ],
        )
    )
    assert ok["images"].shape == (2, 28, 28)
    assert isinstance(wrong_shape, ValueError)
    assert isinstance(failing_answer, ZeroDivisionError)
    assert answered == (2, 28, 28)


def test_large_requests_are_cut_into_calls_of_at_most_max_rows(model):
    batcher = Batcher(model, max_rows=4)
    model.calls.clear()
    try:
        results = asyncio.run(
            while_busy(
                batcher,
                lambda: [
                    asyncio.ensure_future(
                        batcher.run("decode", {"z": np.full((n, 20), n, np.float32)})
                    )
                    for n in (3, 3, 6)
                ],
            )
        )
    finally:
        batcher.close()
    assert [len(r["images"]) for r in results] == [3, 3, 6]
    assert [rows for _, rows in model.calls[1:]] == [3, 3, 4, 2]
    np.testing.assert_array_equal(
        results[2]["images"], model.decode(np.full((6, 20), 6, np.float32))
    )


def test_requests_cancelled_before_their_turn_never_run(model, batcher):
    async def go():
        hold = Hold()
        first = asyncio.ensure_future(batcher.run("decode", {"z": np.zeros((1, 20))}, hold))
        await asyncio.to_thread(hold.started.wait, 10)
        abandoned = asyncio.ensure_future(batcher.run("decode", {"z": np.ones((5, 20))}))
        await asyncio.sleep(0)
        abandoned.cancel()
        await asyncio.sleep(0)
        hold.release.set()
        await first
        return await batcher.run("decode", {"z": np.ones((2, 20))})

    model.calls.clear()
    assert asyncio.run(go())["images"].shape == (2, 28, 28)
    assert ("decode", 5) not in model.calls


def test_requests_with_scalar_inputs_have_calls_of_their_own(model, batcher):
    images = np.zeros((2, 28, 28), np.float32)

    def weights(samples: int):
        return asyncio.ensure_future(
            batcher.run(
                "log_weights",
                {
                    "images": images,
                    "samples": np.array(samples, np.int32),
                    "seed": np.array(0, np.int64),
                },
            )
        )

    model.calls.clear()
    a, b, c = asyncio.run(while_busy(batcher, lambda: [weights(8), weights(8), weights(3)]))
    assert a["log_weights"].shape == (2, 8) and c["log_weights"].shape == (2, 3)
    np.testing.assert_array_equal(a["log_weights"], b["log_weights"])  # as if alone
    assert model.calls[1:] == [("log_weights", 2)] * 3


def test_close_finishes_queued_work_then_stops_the_thread(batcher):
    async def go():
        return await batcher.run("decode", {"z": np.zeros((1, 20), np.float32)})

    assert asyncio.run(go())["images"].shape == (1, 28, 28)
    batcher.close()
    assert not batcher._thread.is_alive()


def test_an_answer_for_a_closed_loop_does_not_stop_the_thread(batcher):
    loop = asyncio.new_event_loop()
    orphan = Job(
        "decode", {"z": np.zeros((1, 20), np.float32)}, (), 1, None, loop.create_future(), loop
    )
    loop.close()
    batcher._queue.put(orphan)  # as if its request's loop had gone away meanwhile

    async def go():
        return await batcher.run("decode", {"z": np.zeros((2, 20), np.float32)})

    assert asyncio.run(go())["images"].shape == (2, 28, 28)
