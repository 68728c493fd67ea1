"""Under pressure, on a real server process (uvicorn as ``vae-serve`` runs it) serving the
NumPy stand-in model, whose calls can be made slow on purpose to set its capacity:

- overload at 4× capacity: admitted requests all succeed within the queue's bound, the rest
  are refused at once (503 + Retry-After), health checks stay fast, memory stays flat, and
  latency is back to normal as soon as the load stops;
- fair batching: a small request is not held up by large ones (PNG grids, 256 codes);
- abandoned work: a client that goes away costs no model call and no further image decoding;
- bounded memory for uploads: what decoding an image may take (``images.decode_cost``) is
  an upper bound of the measured resident memory, for every mode and format, and many
  amplifying uploads at once stay within the decoding budget.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from app.config import Settings
from tests import imagegen
from tests.live import LiveServer, connect
from tests.load import Outcome, open_loop, percentile

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
# Steady allocation at the same addresses would hide each measurement's peak behind the last
# one; with a fixed mmap threshold, glibc returns every large block when it is freed.
FRESH_PEAKS = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def sequential_latencies(url: str, count: int, body: dict, **params: int) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post("/v1/generate", json=body, params=params)
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - started)
    return latencies


# --- overload ---------------------------------------------------------------------------------
DELAY, ROWS_PER_CALL, QUEUE_ROWS = 0.2, 2, 4
CAPACITY = ROWS_PER_CALL / DELAY  # requests of one image a second
OVERLOAD, SECONDS = 4, 6


async def overload_with_probes(url: str) -> tuple[list[Outcome], list[Outcome], list[Outcome]]:
    """The load, health checks meanwhile, and a probe that goes on after the load stops."""
    generate = {"method": "POST", "url": "/v1/generate", "json": {"count": 1}}
    health = {"method": "GET", "url": "/readyz"}
    probe = open_loop(url, 5, SECONDS + 4, lambda i: generate)
    load = open_loop(url, OVERLOAD * CAPACITY, SECONDS, lambda i: generate)
    checks = open_loop(url, 10, SECONDS, lambda i: health)
    return await asyncio.gather(load, checks, probe)


def test_overload_at_4x_capacity_refuses_the_excess_at_once_and_recovers():
    with LiveServer(
        delay=DELAY, max_rows_per_call=ROWS_PER_CALL, max_queue_rows=QUEUE_ROWS, request_timeout=5
    ) as server:
        alone = statistics.median(sequential_latencies(server.url, 5, {"count": 1}))
        before = server.rss_mb()
        server.reset_peak()
        load, checks, probe = asyncio.run(overload_with_probes(server.url))
        growth = server.peak_rss_mb() - before
        assert server.ready()

    admitted = [o for o in load if o.status != 503]
    refused = [o for o in load if o.status == 503]
    assert admitted and all(o.status == 200 for o in admitted), {str(o.status) for o in admitted}
    assert all(o.retry_after and int(o.retry_after) >= 1 for o in refused)
    assert len(refused) > 0.6 * len(load)  # at 4×, about three in four
    assert len(admitted) >= 0.5 * CAPACITY * SECONDS  # the capacity was used
    # Admitted requests waited at most for the bounded queue (the issue: 17 s at 2×).
    worst_wait = QUEUE_ROWS / CAPACITY + DELAY
    assert max(o.seconds for o in admitted) < worst_wait + 1.0
    # Refused at once: under 50 ms, or (on a machine other work keeps busy) no slower
    # than a health check, which does no work at all.
    refused_p99 = percentile([o.seconds for o in refused], 0.99)
    health_p99 = percentile([o.seconds for o in checks], 0.99)
    assert refused_p99 < 0.050 or refused_p99 <= health_p99 * 1.5, (refused_p99, health_p99)
    # Health checks never wait in the queue the way admitted requests do.
    assert all(o.status == 200 for o in checks)
    assert health_p99 < statistics.median(o.seconds for o in admitted)
    # Back to the latency of a request alone within seconds of the load's end.
    recovered = [
        o for o in probe if o.sent_at > SECONDS and o.status == 200 and o.seconds < 2 * alone + 0.1
    ]
    assert recovered and recovered[0].sent_at - SECONDS < 2.0
    assert growth < 30, f"resident memory grew {growth:.0f} MB under overload"
    print(
        f"\noverload {OVERLOAD}×: {len(load)} requests, {len(admitted)} admitted (all 200, "
        f"p99 {percentile([o.seconds for o in admitted], 0.99) * 1000:.0f} ms), "
        f"{len(refused)} refused (p50 "
        f"{percentile([o.seconds for o in refused], 0.5) * 1000:.1f} ms, p99 "
        f"{refused_p99 * 1000:.1f} ms; /readyz p99 {health_p99 * 1000:.1f} ms), recovered "
        f"{(recovered[0].sent_at - SECONDS) * 1000:.0f} ms after the load, "
        f"RSS +{growth:.1f} MB"
    )


# --- fair batching ----------------------------------------------------------------------------
Request = tuple[dict[str, int], dict[str, int], dict[str, str]]
LARGE_PNG: Request = ({"count": 256}, {"scale": 16}, {"Accept": "image/png"})
LARGE_JSON: Request = ({"count": 256}, {}, {})


def keep_sending(url: str, request: Request, stop: threading.Event, done: list[int]) -> None:
    body, params, headers = request
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            response = client.post("/v1/generate", json=body, params=params, headers=headers)
            assert response.status_code == 200, response.text
            done.append(1)


def test_a_small_request_is_not_held_up_by_large_ones():
    """The issue: one count-256, scale-16 PNG request held every other request for about
    0.5 s. Large PNG grids are now drawn outside the inference thread and calls hold at most
    VAE_MAX_ROWS_PER_CALL rows, so a small request waits for the CPU like a health check
    does (which never goes near the model), not for the large requests to finish."""
    with LiveServer(max_output_pixels=52_000_000) as server:
        alone = sequential_latencies(server.url, 60, {"count": 1})
        stop, done = threading.Event(), []
        senders = [
            threading.Thread(target=keep_sending, args=(server.url, r, stop, done))
            for r in (LARGE_PNG, LARGE_JSON)
        ]
        for sender in senders:
            sender.start()
        small, health = [], []
        try:
            time.sleep(0.5)
            with httpx.Client(base_url=server.url, timeout=30) as client:
                deadline = time.monotonic() + 30
                while (len(small) < 100 or len(done) < 6) and time.monotonic() < deadline:
                    started = time.perf_counter()
                    assert client.post("/v1/generate", json={"count": 1}).status_code == 200
                    small.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    assert client.get("/healthz").status_code == 200
                    health.append(time.perf_counter() - started)
        finally:
            stop.set()
            for sender in senders:
                sender.join(60)
    p99_small, p99_health = percentile(small, 0.99), percentile(health, 0.99)
    print(
        f"\nsmall request p50/p99: alone {statistics.median(alone) * 1000:.1f}/"
        f"{percentile(alone, 0.99) * 1000:.1f} ms; beside {len(done)} large requests "
        f"{statistics.median(small) * 1000:.1f}/{p99_small * 1000:.1f} ms, a health check "
        f"meanwhile {statistics.median(health) * 1000:.1f}/{p99_health * 1000:.1f} ms"
    )
    assert len(done) >= 6, "the large requests did not run meanwhile"
    assert p99_small < 0.5, f"p99 {p99_small * 1000:.0f} ms beside large requests"
    # Beside the large requests, no worse than alone (the machine's own noise) or than a
    # health check meanwhile, give or take one large JSON answer's model call.
    assert p99_small < max(percentile(alone, 0.99), p99_health) + 0.1


# --- abandoned work ---------------------------------------------------------------------------
def send_and_leave(url: str, head: bytes, body: bytes, stay: float) -> None:
    """Send a whole request, wait ``stay`` seconds, and close the connection unanswered."""
    with connect(url) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(stay)


def test_a_queued_request_whose_client_left_never_reaches_the_model():
    with LiveServer(delay=0.6) as server:
        calls = server.metric("vae_inference_seconds_count", signature="sample_batch")
        blocker = threading.Thread(
            target=httpx.post,
            args=(f"{server.url}/v1/generate",),
            kwargs={"json": {"count": 1}, "timeout": 30},
        )
        blocker.start()
        time.sleep(0.2)  # the blocker's call holds the inference thread
        send_and_leave(
            server.url,
            b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
            b'{"count": 64}',
            stay=0.1,
        )
        blocker.join()
        time.sleep(0.8)  # time for the abandoned call, had it run
        assert server.metric("vae_inference_seconds_count", signature="sample_batch") - calls == 1
        assert server.metric("vae_dropped_calls_total", signature="sample_batch") >= 1
        assert server.metric("vae_images_total", endpoint="generate") == 1
        assert server.ready()


def test_an_upload_whose_client_left_stops_being_decoded():
    """The issue: closing an 8-image upload still cost 1.3 s of CPU. Now at most the image
    being decoded at that moment finishes; the others never start, nor the model call."""
    heavy = imagegen.blank_png(4000, 3999, 8, 6)  # 62 kB, about a second of CPU to decode
    with LiveServer() as server:
        started = server.cpu_seconds()
        response = httpx.post(
            f"{server.url}/v1/encode", files={"file": ("one.png", heavy)}, timeout=60
        )
        assert response.status_code == 200
        one_image = server.cpu_seconds() - started

        body = b"".join(
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
            + b"%d.png" % i
            + b'"\r\n\r\n'
            + heavy
            + b"\r\n"
            for i in range(8)
        )
        body += b"--b--\r\n"
        left_at = server.cpu_seconds()
        send_and_leave(
            server.url,
            b"POST /v1/encode HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n",
            body,
            stay=one_image / 2,
        )
        time.sleep(8 * one_image + 1)
        after_leaving = server.cpu_seconds() - left_at
        assert server.metric("vae_images_total", endpoint="encode") == 1
    print(
        f"\none image: {one_image:.2f} s of CPU; an abandoned 8-image upload: {after_leaving:.2f} s"
    )
    assert after_leaving < 2.5 * one_image


# --- bounded memory for uploads ---------------------------------------------------------------
W, H = 4000, 3999


def pillow_file(mode: str, fmt: str, size: tuple[int, int] = (W, H)) -> bytes:
    options: dict[str, dict[str, Any]] = {
        "TIFF": {"compression": "tiff_adobe_deflate"},
        "WEBP": {"lossless": True},
    }
    return imagegen.save(Image.new(mode, size), fmt, **options.get(fmt, {}))


AMPLIFIERS = {
    "L PNG": lambda: imagegen.blank_png(W, H),
    "RGB PNG": lambda: imagegen.blank_png(W, H, 8, 2),
    "RGBA PNG": lambda: imagegen.blank_png(W, H, 8, 6),
    "RGBA 16-bit PNG": lambda: imagegen.blank_png(W, H, 16, 6),
    "I;16 PNG": lambda: imagegen.blank_png(W, H, 16, 0),
    "P GIF": lambda: pillow_file("P", "GIF"),
    "F TIFF": lambda: pillow_file("F", "TIFF"),
    "I TIFF": lambda: pillow_file("I", "TIFF"),
    "CMYK TIFF": lambda: pillow_file("CMYK", "TIFF"),
    "LA TIFF": lambda: pillow_file("LA", "TIFF"),
    "PA TIFF": lambda: pillow_file("PA", "TIFF"),
    "RGBA WebP 3600×3600": lambda: pillow_file("RGBA", "WEBP", (3600, 3600)),
    "CMYK JPEG": lambda: pillow_file("CMYK", "JPEG"),
}


@pytest.fixture(scope="module")
def amplifiers() -> dict[str, bytes]:
    return {name: make() for name, make in AMPLIFIERS.items()}


def test_the_decode_cost_bounds_the_measured_memory_of_every_mode_and_format(amplifiers):
    from app import images

    rows = []
    with LiveServer(env=FRESH_PEAKS) as server, httpx.Client(timeout=120) as client:
        client.post(
            f"{server.url}/v1/encode",
            files={"file": ("warm.png", imagegen.save(imagegen.digit(), "PNG"))},
        )
        for name, data in amplifiers.items():
            opened = images.open_image(data, 10**9, name)
            cost = images.decode_cost(opened) / MiB
            time.sleep(0.1)
            before = server.rss_mb()
            server.reset_peak()
            response = client.post(f"{server.url}/v1/encode", files={"file": (name, data)})
            assert response.status_code == 200, (name, response.text)
            peak = server.peak_rss_mb() - before
            rows.append(
                f"{name:22s} {len(data) / 1024:6.0f} kB  {opened.width}×{opened.height}"
                f"  peak +{peak:5.0f} MB  bound {cost:4.0f} MB  "
                f"({peak * MiB / (opened.width * opened.height):4.1f} B/px)"
            )
            assert peak <= cost + 8, rows[-1]
    print("\n" + "\n".join(rows))


def test_many_amplifying_uploads_at_once_stay_within_the_decoding_budget(amplifiers):
    """24 uploads at once of 16-megapixel images that are 18 to 120 kB on the wire (the
    issue: four 18 kB PNGs took 1 GB), within the default VAE_DECODE_MEMORY_BYTES."""
    budget = Settings().decode_memory_bytes / MiB
    mix = (
        ["L PNG"] * 10
        + ["RGBA PNG"] * 4
        + ["F TIFF"] * 4
        + ["PA TIFF"] * 2
        + ["RGBA WebP 3600×3600"] * 2
        + ["I;16 PNG"] * 2
    )
    with LiveServer(request_timeout=60) as server:
        httpx.post(
            f"{server.url}/v1/encode",
            files={"file": ("warm.png", imagegen.save(imagegen.digit(), "PNG"))},
        )
        before = server.rss_mb()
        server.reset_peak()

        def upload(name: str) -> int:
            return httpx.post(
                f"{server.url}/v1/encode", files={"file": (name, amplifiers[name])}, timeout=120
            ).status_code

        with ThreadPoolExecutor(len(mix)) as pool:
            statuses = list(pool.map(upload, mix))
        peak = server.peak_rss_mb() - before
        after = server.rss_mb() - before
        assert server.ready()
    print(
        f"\n{len(mix)} amplifying uploads at once: peak +{peak:.0f} MB (budget {budget:.0f} "
        f"MB), +{after:.0f} MB after"
    )
    assert statuses == [200] * len(mix)
    # The rest: 24 requests' bodies and answers, and glibc's per-thread arenas.
    assert peak <= budget + 64


def test_an_upload_of_16_megapixels_is_decoded_in_a_fraction_of_its_size():
    """JPEG photos are decoded at 1/8 scale: a 16-megapixel photo never exists in memory."""
    photo = pillow_file("RGB", "JPEG")
    with LiveServer(env=FRESH_PEAKS) as server:
        httpx.post(f"{server.url}/v1/encode", files={"file": ("warm.jpeg", photo)})
        before = server.rss_mb()
        server.reset_peak()
        assert (
            httpx.post(
                f"{server.url}/v1/encode", files={"file": ("photo.jpeg", photo)}, timeout=60
            ).status_code
            == 200
        )
        assert server.peak_rss_mb() - before < 16
