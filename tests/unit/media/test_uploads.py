"""Fast tier: the decoding budget of ``app.media.uploads`` (a weighted semaphore served in arrival
order) and the refusals that come before any pixel is decoded. The memory it bounds is
measured on a real server in ``tests/reliability/test_pressure.py``."""

from __future__ import annotations

import asyncio

import pytest

from app.media import preprocess
from app.media.uploads import Budget, UploadReader
from tests.support import imagegen


async def _holder(
    budget: Budget, amount: int, log: list[str], name: str, release: asyncio.Event
) -> None:
    async with budget.hold(amount):
        log.append(name)
        await release.wait()


def test_the_budget_serves_waiters_in_arrival_order_and_never_overcommits():
    async def scenario() -> list[str]:
        budget, log = Budget(10), list[str]()
        release = {name: asyncio.Event() for name in "abcd"}
        tasks = [
            asyncio.create_task(_holder(budget, amount, log, name, release[name]))
            for name, amount in (("a", 6), ("b", 6), ("c", 1), ("d", 4))
        ]
        await asyncio.sleep(0.01)
        assert log == ["a"] and budget.used == 6  # c would fit, but b came first
        release["a"].set()
        await asyncio.sleep(0.01)
        assert log == ["a", "b", "c"] and budget.used == 7
        for event in release.values():
            event.set()
        await asyncio.gather(*tasks)
        assert budget.used == 0
        return log

    assert asyncio.run(scenario()) == ["a", "b", "c", "d"]


def test_a_cancelled_waiter_takes_nothing_and_lets_the_next_one_in():
    async def scenario() -> None:
        budget, log = Budget(10), list[str]()
        release = asyncio.Event()
        first = asyncio.create_task(_holder(budget, 8, log, "first", release))
        big = asyncio.create_task(_holder(budget, 9, log, "big", release))
        small = asyncio.create_task(_holder(budget, 2, log, "small", release))
        await asyncio.sleep(0.01)
        assert log == ["first"]
        big.cancel()  # the client went away while it waited
        await asyncio.sleep(0.01)
        assert log == ["first", "small"] and budget.used == 10
        release.set()
        await asyncio.gather(first, small)
        assert big.cancelled() and budget.used == 0

    asyncio.run(scenario())


def test_a_waiter_cancelled_just_as_it_is_granted_gives_its_share_back():
    async def scenario() -> None:
        budget, log = Budget(10), list[str]()
        async with budget.hold(10):
            second = asyncio.create_task(_holder(budget, 10, log, "second", asyncio.Event()))
            await asyncio.sleep(0.01)
        # Leaving the block granted `second` its share; it is cancelled before it runs.
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert second.cancelled() and log == [] and budget.used == 0

    asyncio.run(scenario())


def test_an_image_that_could_never_fit_the_budget_is_refused_before_decoding():
    reader = UploadReader(max_pixels=50_000_000, concurrency=2, memory_bytes=8_000_000)
    bomb = imagegen.blank_png(2000, 2000, 8, 6)  # 4 megapixels of RGBA: 36 MB to decode

    with pytest.raises(preprocess.ImageError) as refused:
        asyncio.run(reader.load(bomb, "bomb.png"))
    assert refused.value.status_code == 413
    assert "VAE_DECODE_MEMORY_BYTES" in refused.value.message


@pytest.mark.parametrize(
    "mode, fmt, cost",
    [
        ("L", "PNG", 3),
        ("I;16", "PNG", 5),
        ("RGB", "PNG", 9),
        ("RGBA", "PNG", 9),
        ("P", "GIF", 3),
        ("PA", "TIFF", 9),
        ("F", "TIFF", 9),
        ("RGB", "WEBP", 18),
    ],
)
def test_the_decode_cost_follows_the_mode_and_format(mode, fmt, cost):
    from PIL import Image

    image = Image.new(mode, (100, 80))
    opened = preprocess.open_image(
        imagegen.save(image, fmt, **({"lossless": True} if fmt == "WEBP" else {})), 10**8, "x"
    )
    assert preprocess.decode_cost(opened) == cost * 100 * 80


def test_a_jpeg_is_charged_at_its_reduced_decoding_size():
    from PIL import Image

    photo = imagegen.save(Image.new("RGB", (4096, 4096)), "JPEG")
    opened = preprocess.open_image(photo, 10**8, "photo.jpeg")
    assert opened.size == (512, 512)  # libjpeg's 1/8 scale
    assert preprocess.decode_cost(opened) == 9 * 512 * 512
