"""Server-side batching on a real SavedModel: a request merged with others gets what it would
get alone. Its codes are the same to the bit (stateless sampling keyed by seed and row); its
images are the same to float32 rounding, because TensorFlow's matrix kernels add in another
order for another number of rows (measured: of 16 row counts, 3 gave the 256-row call's bits),
so an 8-bit pixel may differ by one grey level, rarely."""

from __future__ import annotations

import asyncio

import numpy as np

from app.api.latent import sample_rows
from app.media.pictures import to_pixels
from app.serving.batching import Batcher
from app.serving.tensorflow_model import VaeModel
from tests.support.batching import while_busy

# (count, seed, temperature, digit): 57 requests, 195 images.
REQUESTS = [(1 + i % 6, 1000 + i, (0.5, 1.0, 1.3)[i % 3], (None, i % 10)[i % 2]) for i in range(57)]


def test_a_merged_request_gets_what_it_gets_alone(version_dir):
    model = VaeModel(version_dir, "/CPU:0")
    batcher = Batcher(model)

    def submit() -> list[asyncio.Future]:
        return [
            asyncio.ensure_future(batcher.run("sample_batch", sample_rows(*request)))
            for request in REQUESTS
        ]

    async def one_by_one() -> list:
        return [await batcher.run("sample_batch", sample_rows(*r)) for r in REQUESTS]

    try:
        alone = asyncio.run(one_by_one())
        merged = asyncio.run(while_busy(batcher, submit))
    finally:
        batcher.close()
    assert model.latent_dim == 20  # while_busy's first request decodes 20-number codes
    codes = [np.concatenate([answer["latents"] for answer in run]) for run in (alone, merged)]
    np.testing.assert_array_equal(*codes)
    images = [np.concatenate([answer["images"] for answer in run]) for run in (alone, merged)]
    np.testing.assert_allclose(*images, rtol=0, atol=1e-5)
    pixels = [to_pixels(batch).astype(int) for batch in images]
    differ = np.abs(pixels[0] - pixels[1])
    assert differ.max() <= 1 and differ.mean() < 1e-3, (differ.max(), differ.mean())
