"""Soak: many mixed requests against one server process, its resident memory sampled as they
go. After a warm-up, memory may not grow by more than ``--max-growth-mb``; every answer must be
the expected one (valid requests 200, invalid ones their 4xx), with no transport error.

A deliberately leaking control shows that the check catches a leak: ``--leak-bytes N`` makes
the server keep N bytes per request (``tests/support/fake_server.py``).

    python -m benchmarks.soak                       # 100,000 requests, the stand-in model
    python -m benchmarks.soak --leak-bytes 2048     # the control: must FAIL the check
    python -m benchmarks.soak --model-dir model     # the real vae-serve and TensorFlow model

Without ``--model-dir`` the server is ``tests/support/fake_server.py``: uvicorn, the protocol and
options of ``vae-serve``, and the whole application, with a NumPy stand-in for the SavedModel.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import imagegen  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402

JSON = {"Content-Type": "application/json"}


def request_mix(latent_dim: int) -> list[tuple[dict[str, Any], set[int]]]:
    """What a day of traffic looks like: httpx arguments and the statuses they may get."""
    code = [0.1] * latent_dim
    png = imagegen.save(imagegen.digit(), "PNG")
    return [
        ({"method": "POST", "url": "/v1/generate", "json": {"count": 1}}, {200}),
        (
            {
                "method": "POST",
                "url": "/v1/generate",
                "json": {"count": 8, "seed": 3},
                "params": {"scale": 2},
                "headers": {"Accept": "image/png"},
            },
            {200},
        ),
        ({"method": "POST", "url": "/v1/decode", "json": {"latents": [code] * 4}}, {200}),
        (
            {
                "method": "POST",
                "url": "/v1/decode",
                "json": {"latents": [code] * 2},
                "headers": {"Accept": "application/x-npy"},
            },
            {200},
        ),
        ({"method": "POST", "url": "/v1/encode", "files": {"file": ("digit.png", png)}}, {200}),
        (
            {
                "method": "POST",
                "url": "/v1/encode",
                "files": {"file": ("bad.png", png[: len(png) // 2])},
            },
            {422},
        ),
        (
            {
                "method": "POST",
                "url": "/v1/generate",
                "content": b'{"count": NaN}',
                "headers": JSON,
            },
            {422},
        ),
        (
            {"method": "POST", "url": "/v1/models/vae:predict", "json": {"instances": [code] * 2}},
            {200},
        ),
        ({"method": "GET", "url": "/readyz"}, {200}),
        ({"method": "GET", "url": "/healthz"}, {200}),
        ({"method": "GET", "url": "/v1/model"}, {200}),
        ({"method": "GET", "url": "/no-such-page"}, {404}),
    ]


@dataclass
class SoakResult:
    requests: int
    seconds: float
    baseline_mb: float
    final_mb: float
    peak_mb: float
    statuses: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    samples: list[tuple[int, float]] = field(default_factory=list)

    @property
    def growth_mb(self) -> float:
        """Resident memory at the end above the baseline taken after the warm-up."""
        return self.final_mb - self.baseline_mb

    def passed(self, max_growth_mb: float) -> bool:
        return self.growth_mb < max_growth_mb and not self.unexpected


def run(
    server: LiveServer,
    requests: int,
    concurrency: int = 4,
    warm_up: int = 2000,
    progress: bool = False,
) -> SoakResult:
    """Send ``warm_up`` then ``requests`` mixed requests from ``concurrency`` keep-alive
    clients; the baseline is the resident memory after the warm-up."""
    latent_dim = httpx.get(f"{server.url}/v1/model", timeout=10).json()["latent_dim"]
    mix = request_mix(latent_dim)

    def send(count: int, result: SoakResult | None) -> None:
        counter = itertools.count()
        lock = threading.Lock()

        def worker() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                while (index := next(counter)) < count:
                    arguments, expected = mix[index % len(mix)]
                    try:
                        status: int | str = client.request(**arguments).status_code
                    except httpx.HTTPError as error:
                        status = type(error).__name__
                    if result is None:
                        continue
                    with lock:
                        result.statuses[status] += 1
                        if status not in expected:
                            result.unexpected.append(f"{arguments['url']}: {status}")
                        if index % 1000 == 0:
                            result.samples.append((index, server.rss_mb()))
                            if progress:
                                print(
                                    f"  {index:7d} requests  RSS {server.rss_mb():7.1f} MB",
                                    flush=True,
                                )

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    send(warm_up, None)
    baseline = server.rss_mb()
    server.reset_peak()
    result = SoakResult(requests, 0.0, baseline, baseline, baseline)
    started = time.perf_counter()
    send(requests, result)
    result.seconds = time.perf_counter() - started
    result.final_mb = server.rss_mb()
    result.peak_mb = server.peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-growth-mb", type=float, default=100.0)
    parser.add_argument(
        "--leak-bytes",
        type=int,
        default=0,
        help="the leaking control: bytes the server keeps per request",
    )
    parser.add_argument(
        "--model-dir", type=Path, help="serve this model with the real vae-serve (TensorFlow)"
    )
    args = parser.parse_args(argv)

    if args.model_dir:
        if args.leak_bytes:
            parser.error("--leak-bytes needs the stand-in server (no --model-dir)")
        server = LiveServer(
            command=[sys.executable, "-m", "app.cli", "--host", "127.0.0.1"],
            model_dir=args.model_dir.resolve(),
            ready_timeout=180,
        )
        what = f"vae-serve, model {args.model_dir}"
    else:
        server = LiveServer(leak_bytes=args.leak_bytes)
        what = "the stand-in model" + (
            f", leaking {args.leak_bytes} B a request" if args.leak_bytes else ""
        )
    with server:
        print(f"soak: {args.requests} requests, {args.concurrency} clients, {what}", flush=True)
        result = run(server, args.requests, args.concurrency, progress=True)
    rate = result.requests / result.seconds
    print(
        f"{result.requests} requests in {result.seconds:.0f} s ({rate:.0f}/s); statuses "
        f"{dict(result.statuses)}; unexpected: {len(result.unexpected)}"
    )
    print(
        f"RSS after warm-up {result.baseline_mb:.1f} MB, at the end {result.final_mb:.1f} MB "
        f"(+{result.growth_mb:.1f} MB), peak {result.peak_mb:.1f} MB"
    )
    ok = result.passed(args.max_growth_mb)
    print(
        f"{'PASS' if ok else 'FAIL'}: growth {result.growth_mb:.1f} MB "
        f"{'<' if result.growth_mb < args.max_growth_mb else '>='} {args.max_growth_mb:g} MB"
        + (f"; {result.unexpected[:5]}" if result.unexpected else "")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
