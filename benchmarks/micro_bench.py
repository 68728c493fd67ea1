"""Micro-benchmarks of the serving path's parts and of candidate speed-ups, each in isolation.

    python -m benchmarks.micro_bench [asgi] [service] [handoff] [tfcall] [png] [json] [base64]
        [binary] [request] [ipc] [--model-dir model] [--quick] [--app-root DIR]

Every section prints microseconds of CPU (the least over many repeats, on this thread, or on
the whole process where TensorFlow's threads work too; wall time where a wait is the point)
and, where a candidate replaces something, the ratio. TensorFlow is imported first in
every section that touches images: the heap it leaves behind changes what allocation-heavy code
(zlib, Pillow) costs, and the service always runs with it.

- asgi: the event loop's CPU per request through FastAPI, layer by layer (no sockets: the ASGI
  app is called directly), from the bare endpoint to the service's route with its pydantic
  body, dependencies, Header/Query parameters, the two middlewares and JSONResponse.
- service: the real service (``--app-root DIR``: a prototype copy's) driven in-process by 16
  clients, CPU per request of the event loop, the inference thread and the whole process.
- handoff: a future resolved from another thread with call_soon_threadsafe, once per request
  (today) or once per batch.
- tfcall: a SavedModel signature call: as the service calls it, with tensors built beforehand,
  and through ConcreteFunction._call_flat (private API).
- png: Pillow against ``app/png.py`` (byte-identical, checked here on random and
  decoded images), per image in a batch of 64, alone, and for a grid.
- json: json.dumps (Starlette's JSONResponse) against orjson and pydantic_core.to_json.
- request: the decode body (64 codes) parsed and validated: today, by pydantic from JSON, or
  by numpy.
- base64: the JSON answer's 64 base64 strings, one by one or written straight into the body.
- binary: numpy -> bytes for an ``application/x-npy`` or raw uint8 answer (copy or zero-copy).
- ipc: a worker process (pipe, queue, shared memory) against a thread, and what the GIL costs
  the event loop while PNGs are encoded in a thread or a process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parents[1]
QUICK = False


def best_us(
    function: Callable[[], Any],
    number: int,
    repeat: int = 15,
    clock: Callable[[], float] = time.thread_time,
) -> float:
    """Least CPU time per call over ``repeat`` runs of ``number // 3`` calls, in microseconds.

    This thread's CPU time by default, not wall time: on a machine shared with other work,
    being descheduled does not count (cache pollution still does, hence the minimum).
    ``clock=time.process_time`` counts every thread of the process (TensorFlow's pools).
    """
    function()
    number = max(1, number // 3 if not QUICK else number // 15)
    repeat = repeat if not QUICK else 5
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        for _ in range(number):
            function()
        best = min(best, (clock() - start) / number)
    return best * 1e6


def line(label: str, micros: float, base: float | None = None, unit: str = "us") -> None:
    ratio = f"  ({base / micros:.2f}x faster)" if base else ""
    print(f"  {label:66} {micros:9.1f} {unit}{ratio}", flush=True)


def import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    return tf


def load_model(model_dir: Path) -> Any:
    tf = import_tensorflow()
    base = model_dir / "vae"
    version = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
    return tf.saved_model.load(str(base / str(version)))


def decoded_pixels(model_dir: Path, count: int, seed: int = 0) -> np.ndarray:
    """Real decoder output for random codes, as the service's 8-bit pixels [N, 28, 28]."""
    from app.images import to_pixels

    loaded = load_model(model_dir)
    z = np.random.default_rng(seed).normal(size=(count, 20)).astype(np.float32)
    return to_pixels(loaded.signatures["decode"](z=z)["images"].numpy())


def generate_answer() -> dict[str, Any]:
    """A realistic generate (count 1) answer: 20 latents, one base64 PNG."""
    rng = np.random.default_rng(0)
    return {
        "latents": rng.normal(size=(1, 20)).astype(np.float32).tolist(),
        "seed": 123456,
        "digit": None,
        "images": [base64.b64encode(bytes(300)).decode()],
    }


class GenerateRequest(BaseModel):
    """Shaped like app.schemas.GenerateRequest (same fields and constraints)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    temperature: float = Field(1.0, ge=0.0, le=10.0, allow_inf_nan=False)
    digit: int | None = Field(None, ge=0, le=9)


async def get_value(request: Request) -> Any:
    """A dependency shaped like the service's get_batcher and get_settings."""
    return request.app.state.value


# Module level: FastAPI resolves string annotations in the handler's module globals.
Value = Annotated[Any, Depends(get_value)]


# --- asgi --------------------------------------------------------------------------------------


def asgi_section(args: argparse.Namespace) -> None:
    print("\nasgi: event-loop CPU per request, ASGI app called directly (no sockets), uvloop")
    import uvloop

    from app.connections import ConnectionGuard
    from app.metrics import MetricsMiddleware
    from benchmarks.bare_app import app as bare_app

    answer = generate_answer()
    answer_bytes = json.dumps(answer).encode()
    body = b'{"count": 1}'
    off = {"tracing": False, "metrics": False, "logs": False}

    def respond(render: str) -> Response:
        if render == "json.dumps":
            return JSONResponse(answer)
        if render == "orjson":
            import orjson

            return Response(orjson.dumps(answer), media_type="application/json")
        return Response(answer_bytes, media_type="application/json")

    Accept = Annotated[str | None, Header()]
    Nrow = Annotated[int | None, Query(ge=1, le=256)]
    Scale = Annotated[int, Query(ge=1, le=16)]
    handlers: dict[str, Callable[..., Any]] = {}

    def shape(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            handlers[name] = function
            return function

        return register

    @shape("raw")
    async def raw(request: Request) -> Response:
        await request.body()
        return respond(request.app.state.render)

    @shape("body")
    async def typed(request: Request, body: GenerateRequest) -> Response:
        return respond(request.app.state.render)

    @shape("deps")
    async def deps(request: Request, body: GenerateRequest, a: Value, b: Value) -> Response:
        return respond(request.app.state.render)

    @shape("header")
    async def header(
        request: Request, body: GenerateRequest, a: Value, b: Value, accept: Accept = None
    ) -> Response:
        return respond(request.app.state.render)

    @shape("header+query")
    async def header_query(
        request: Request,
        body: GenerateRequest,
        a: Value,
        b: Value,
        accept: Accept = None,
        nrow: Nrow = None,
        scale: Scale = 1,
    ) -> Response:
        return respond(request.app.state.render)

    @shape("request.headers+query")
    async def request_query(
        request: Request,
        body: GenerateRequest,
        a: Value,
        b: Value,
        nrow: Nrow = None,
        scale: Scale = 1,
    ) -> Response:
        request.headers.get("accept")
        return respond(request.app.state.render)

    def layered(
        handler: str, *, middleware: bool = False, render: str = "bytes", telemetry: bool = False
    ) -> FastAPI:
        app = FastAPI(telemetry=None if telemetry else off)
        app.state.value = object()
        app.state.render = render
        if middleware:
            app.add_middleware(
                ConnectionGuard,
                max_upload_bytes=5 * 1024 * 1024,
                max_json_bytes=1024 * 1024,
                body_timeout=10.0,
            )
            app.add_middleware(MetricsMiddleware)
        app.post("/v1/generate")(handlers[handler])
        return app

    variants: list[tuple[str, Any]] = [
        ("bare_app.py (dict body, returns a dict: FastAPI serialises)", bare_app),
        ("raw Request, constant bytes Response, telemetry off", layered("raw")),
        ("+ FastAPI native telemetry on (FastAPI's default)", layered("raw", telemetry=True)),
        ("pydantic GenerateRequest body, telemetry off", layered("body")),
        ("+ two async Depends (like get_batcher, get_settings)", layered("deps")),
        ("+ Header(accept)", layered("header")),
        ("+ two Query params (nrow, scale)", layered("header+query")),
        ("  same, Accept read from request.headers, no Header()", layered("request.headers+query")),
        (
            "+ the two pure-ASGI middlewares (body limit, metrics)",
            layered("header+query", middleware=True),
        ),
        (
            "+ JSONResponse (json.dumps) of the answer",
            layered("header+query", middleware=True, render="json.dumps"),
        ),
        (
            "  same with orjson.dumps in a Response",
            layered("header+query", middleware=True, render="orjson"),
        ),
        (
            "+ telemetry on: the service's route shape today",
            layered("header+query", middleware=True, render="json.dumps", telemetry=True),
        ),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/generate",
        "raw_path": b"/v1/generate",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(message)

    async def drive(app: Any, count: int) -> float:
        for _ in range(200):
            await app(dict(scope), receive, send)
        start = time.thread_time()
        for _ in range(count):
            await app(dict(scope), receive, send)
        return (time.thread_time() - start) / count * 1e6

    count = 400 if QUICK else 2000
    loop = uvloop.new_event_loop()
    for label, app in variants:
        line(label, min(loop.run_until_complete(drive(app, count)) for _ in range(9)))
    loop.close()


def service_section(args: argparse.Namespace) -> None:
    """The real service app (real model, real batcher) driven in-process by 16 clients."""
    import uvloop

    from app.config import Settings
    from app.main import create_app

    origin = Path(sys.modules["app"].__file__).parent.parent
    print(
        f"\nservice: app.main.create_app from {origin} (real model and inference thread), "
        "no sockets, 16 clients in a loop"
    )
    settings = Settings(
        model_dir=args.model_dir, intra_op_threads=2, inter_op_threads=2, log_level="WARNING"
    )
    app = create_app(settings)
    latents = json.dumps({"latents": [[0.1] * 20] * 64}).encode()
    cases = [
        ("generate count 1", "/v1/generate", b'{"count": 1}', 400 if QUICK else 1500),
        ("decode 64 codes", "/v1/decode", latents, 40 if QUICK else 150),
    ]

    async def client(path: str, body: bytes, count: int) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
            "headers": [
                (b"host", b"x"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(message)

        for _ in range(count):
            await app(dict(scope), receive, send)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            inference = app.state.runtime.served.get().batcher._thread
            clock = time.pthread_getcpuclockid(inference.ident)
            for label, path, body, count in cases:
                await asyncio.gather(*(client(path, body, count // 10) for _ in range(16)))
                loop_cpu, thread_cpu = time.thread_time(), time.clock_gettime(clock)
                process_cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.gather(*(client(path, body, count) for _ in range(16)))
                requests = 16 * count
                print(
                    f"  {label}: {requests / (time.perf_counter() - wall):.0f} req/s "
                    "(wall; the machine's load counts), CPU per request:"
                )
                line(
                    "  event loop (uvloop, FastAPI, handler, hand-off)",
                    (time.thread_time() - loop_cpu) / requests * 1e6,
                )
                line(
                    "  inference thread (TF call, PNG, base64, JSON)",
                    (time.clock_gettime(clock) - thread_cpu) / requests * 1e6,
                )
                line(
                    "  whole process (TensorFlow's pools too)",
                    (time.process_time() - process_cpu) / requests * 1e6,
                )

    loop = uvloop.new_event_loop()
    loop.run_until_complete(run())
    loop.close()


# --- handoff -----------------------------------------------------------------------------------


def handoff_section(args: argparse.Namespace) -> None:
    print(
        "\nhandoff: 16 requests' futures resolved from a worker thread (no model), CPU per request"
    )
    for mode in ("per request", "per batch"):
        loop_us, thread_us = measure_handoff(mode, 500 if QUICK else 3000)
        line(f"call_soon_threadsafe {mode}: event loop", loop_us)
        line(f"call_soon_threadsafe {mode}: worker thread", thread_us)


def measure_handoff(mode: str, rounds: int) -> tuple[float, float]:
    """Event-loop and worker CPU per request when 16 waiting futures are settled from a
    thread with one call_soon_threadsafe each ("per request") or one for all ("per batch")."""
    import uvloop

    jobs: list = []
    ready, done = threading.Event(), threading.Event()

    def settle_all(batch: list) -> None:
        for future, value in batch:
            if not future.done():
                future.set_result(value)

    def worker(loop: asyncio.AbstractEventLoop) -> None:
        while not done.is_set():
            if not ready.wait(0.1):
                continue
            ready.clear()
            batch, jobs[:] = list(jobs), []
            if mode == "per request":
                for job in batch:
                    loop.call_soon_threadsafe(settle_all, [job])
            else:
                loop.call_soon_threadsafe(settle_all, batch)

    async def one() -> Any:
        future = asyncio.get_running_loop().create_future()
        jobs.append((future, 1))
        ready.set()
        return await future

    async def run() -> tuple[float, float]:
        thread = threading.Thread(target=worker, args=(asyncio.get_running_loop(),), daemon=True)
        thread.start()
        clock = time.pthread_getcpuclockid(thread.ident)
        for _ in range(100):
            await asyncio.gather(*(one() for _ in range(16)))
        start_loop, start_thread = time.thread_time(), time.clock_gettime(clock)
        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(16)))
        loop_us = (time.thread_time() - start_loop) / (16 * rounds) * 1e6
        thread_us = (time.clock_gettime(clock) - start_thread) / (16 * rounds) * 1e6
        done.set()
        return loop_us, thread_us

    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


# --- tfcall ------------------------------------------------------------------------------------


def tfcall_section(args: argparse.Namespace) -> None:
    print(
        "\ntfcall: one SavedModel signature call (wall, and CPU of every thread: TensorFlow's "
        "pools spin)"
    )
    tf = import_tensorflow()
    loaded = load_model(args.model_dir)
    from app.routes.digits import sample_rows

    for name, inputs in [
        ("sample_batch, 1 row", sample_rows(1, 7, 1.0, None)),
        ("sample_batch, 16 rows", sample_rows(16, 7, 1.0, None)),
        (
            "decode, 64 rows",
            {"z": np.random.default_rng(0).normal(size=(64, 20)).astype(np.float32)},
        ),
    ]:
        function = loaded.signatures[name.split(",")[0]]
        specs = function.structured_input_signature[1]
        tensors = {k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()}
        # Private: the flat argument order and the captured variables of the function.
        flat = [tensors[k] for k in function._arg_keywords] + list(function.captured_inputs)
        atomic = function._inference_function
        output_names = (
            [spec.name for spec in atomic.function_type.flat_outputs]
            if hasattr(atomic.function_type, "flat_outputs")
            else None
        )

        def service_call(
            function: Any = function, specs: Any = specs, inputs: dict = inputs
        ) -> dict:
            with tf.device("/CPU:0"):
                outputs = function(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
            return {k: t.numpy() for k, t in outputs.items()}

        def no_device(function: Any = function, specs: Any = specs, inputs: dict = inputs) -> dict:
            outputs = function(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
            return {k: t.numpy() for k, t in outputs.items()}

        def prebuilt(function: Any = function, tensors: dict = tensors) -> dict:
            return {k: t.numpy() for k, t in function(**tensors).items()}

        def call_flat(function: Any = function, flat: list = flat) -> dict:
            n = len(function._arg_keywords)
            outputs = function._call_flat(flat[:n], flat[n:])
            return {k: t.numpy() for k, t in outputs.items()}

        def atomic_preflattened(atomic: Any = atomic, flat: list = flat) -> dict:
            return {k: t.numpy() for k, t in atomic.call_preflattened(flat).items()}

        def atomic_flat(atomic: Any = atomic, flat: list = flat) -> list:
            return [t.numpy() for t in atomic.call_flat(*flat)]

        def constants(specs: Any = specs, inputs: dict = inputs) -> dict:
            return {k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()}

        expected = prebuilt()
        same = all(
            np.array_equal(v, expected[k])
            for f in (call_flat, atomic_preflattened)
            for k, v in f().items()
        )
        same = same and sorted(len(a) for a in atomic_flat()) == sorted(
            len(a) for a in expected.values()
        )
        print(
            f"  {name} (private paths give the same outputs: {same}; outputs "
            f"{output_names or sorted(expected)})"
        )
        for clock, unit in ((time.perf_counter, "us wall"), (time.process_time, "us CPU")):

            def timed(
                function: Callable[[], Any], number: int = 300, clock: Callable[[], float] = clock
            ) -> float:
                return best_us(function, number, clock=clock)

            base = timed(service_call)
            line("as the service calls it (tf.device, tf.constant, call, .numpy)", base, unit=unit)
            line("  without the tf.device context", timed(no_device), base, unit=unit)
            line("  tensors built beforehand (public API)", timed(prebuilt), base, unit=unit)
            line("  ConcreteFunction._call_flat (private)", timed(call_flat), base, unit=unit)
            line(
                "  AtomicFunction.call_preflattened (private)",
                timed(atomic_preflattened),
                base,
                unit=unit,
            )
            line("  AtomicFunction.call_flat (private)", timed(atomic_flat), base, unit=unit)
            line("  tf.constant for the inputs alone", timed(constants, 2000), unit=unit)


# --- png ---------------------------------------------------------------------------------------


def png_section(args: argparse.Namespace) -> None:
    from app import images
    from app import png as fastpng

    pixels = decoded_pixels(args.model_dir, 4000 if not QUICK else 500)
    print(
        f"\npng: fastpng reproduces Pillow byte for byte: {fastpng.matches_pillow()} "
        "(startup check)"
    )
    rng = np.random.default_rng(1)
    randoms = rng.integers(0, 256, (len(pixels), 28, 28), dtype=np.uint8)
    for label, batch in [("decoded", pixels), ("random", randoms)]:
        same = sum(a == images.png(b) for a, b in zip(fastpng.png_batch(batch), batch, strict=True))
        print(f"  identical to Pillow: {same}/{len(batch)} {label} 28x28 images")
    grid = images.to_pixels(np.ones((242, 242)) * 0.5)
    grids = [
        np.kron(
            images.to_pixels(np.random.default_rng(2).random((242, 242))), np.ones((s, s), np.uint8)
        )
        for s in (1, 4)
    ]
    same = all(fastpng.png(g) == images.png(g) for g in [grid, *grids])
    print(f"  identical to Pillow on 242x242 and 968x968 grids: {same}")

    batch = pixels[:64]
    floats = batch.astype(np.float32) / 255

    def timed(label: str) -> None:
        print(f"  {label}:")
        pillow = best_us(lambda: [images.png(p) for p in batch], 50) / 64
        line("Pillow, per image of a batch of 64 (images.png)", pillow)
        line(
            "fastpng.png_batch, per image of a batch of 64",
            best_us(lambda: fastpng.png_batch(batch), 50) / 64,
            pillow,
        )
        line(
            "  of which filter_rows (numpy, whole batch)",
            best_us(lambda: fastpng.filter_rows(batch), 100) / 64,
        )
        one = best_us(lambda: images.png(batch[0]), 2000)
        line("Pillow, one image alone", one)
        line("fastpng, one image alone", best_us(lambda: fastpng.png_batch(batch[:1]), 2000), one)
        service = best_us(lambda: images.png_base64(floats), 50)
        line("service's png_base64 (pixels, PNG, base64) for 64 images", service)
        line(
            "same with fastpng",
            best_us(
                lambda: [
                    base64.b64encode(p).decode()
                    for p in fastpng.png_batch(images.to_pixels(floats))
                ],
                50,
            ),
            service,
        )
        grid_pillow = best_us(lambda: images.grid_png(floats), 50)
        line("grid of 64 (242x242), Pillow (images.grid_png)", grid_pillow)
        line("grid of 64, fastpng", best_us(lambda: fastpng.png(grids[0]), 50), grid_pillow)

    timed("main thread")
    worker = threading.Thread(target=timed, args=("a second thread (as the inference thread)",))
    worker.start()
    worker.join()


# --- json, base64, binary ----------------------------------------------------------------------


def json_section(args: argparse.Namespace) -> None:
    import orjson
    import pydantic_core

    print("\njson: answer bodies")
    images_b64 = [base64.b64encode(bytes(range(256)) + bytes(40)).decode() for _ in range(64)]
    for label, answer in [
        ("generate count 1", generate_answer()),
        ("decode 64 images", {"images": images_b64}),
    ]:
        base = best_us(lambda answer=answer: JSONResponse(answer), 5000)
        line(f"{label}: JSONResponse (json.dumps, headers)", base)
        line(
            f"{label}:   json.dumps alone, JSONResponse's settings",
            best_us(
                lambda answer=answer: json.dumps(
                    answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")
                ).encode(),
                5000,
            ),
            base,
        )
        line(
            f"{label}: orjson.dumps",
            best_us(lambda answer=answer: orjson.dumps(answer), 5000),
            base,
        )
        line(
            f"{label}: pydantic_core.to_json",
            best_us(lambda answer=answer: pydantic_core.to_json(answer), 5000),
            base,
        )
        parsed = [json.loads(JSONResponse(answer).body), orjson.loads(orjson.dumps(answer))]
        print(f"    same parsed answer: {parsed[0] == parsed[1]}")
    latents = np.random.default_rng(0).normal(size=(1, 20)).astype(np.float32)
    line("latents [1, 20] float32 .tolist()", best_us(latents.tolist, 20000))


def request_section(args: argparse.Namespace) -> None:
    import orjson

    from app.schemas import DecodeRequest

    print("\nrequest: parsing and validating the decode request body (64 codes of 20 floats)")
    latents = np.random.default_rng(0).normal(size=(64, 20)).round(6).tolist()
    body = json.dumps({"latents": latents}).encode()

    def today() -> np.ndarray:  # what FastAPI and the handler do: json.loads, pydantic, numpy
        request = DecodeRequest.model_validate(json.loads(body))
        return np.asarray(request.latents, np.float32)

    def validate_json() -> np.ndarray:
        return np.asarray(DecodeRequest.model_validate_json(body).latents, np.float32)

    def numpy_checks() -> np.ndarray:
        z = np.asarray(orjson.loads(body)["latents"], np.float32)
        if z.ndim != 2 or not np.isfinite(z).all() or (np.abs(z) > 1000).any():
            raise ValueError("bad latents")
        return z

    assert np.array_equal(today(), validate_json()) and np.array_equal(today(), numpy_checks())
    base = best_us(today, 3000)
    line("json.loads + DecodeRequest.model_validate + np.asarray (today)", base)
    line("  of which json.loads", best_us(lambda: json.loads(body), 3000))
    line("DecodeRequest.model_validate_json + np.asarray", best_us(validate_json, 3000), base)
    line(
        "orjson.loads + np.asarray + vectorised finite/range checks",
        best_us(numpy_checks, 3000),
        base,
    )


def base64_section(args: argparse.Namespace) -> None:
    import orjson

    print("\nbase64: 64 PNGs of ~300 bytes into the decode answer's JSON")
    pngs = [
        bytes(np.random.default_rng(i).integers(0, 256, 300, dtype=np.uint8)) for i in range(64)
    ]
    base = best_us(
        lambda: json.dumps(
            {"images": [base64.b64encode(p).decode("ascii") for p in pngs]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode(),
        5000,
    )
    line("b64encode each, .decode, json.dumps (today)", base)
    line(
        "b64encode each, .decode, orjson.dumps",
        best_us(
            lambda: orjson.dumps({"images": [base64.b64encode(p).decode("ascii") for p in pngs]}),
            5000,
        ),
        base,
    )
    line(
        "binascii.b2a_base64 each, joined straight into the body bytes",
        best_us(
            lambda: (
                b'{"images":["'
                + b'","'.join(binascii.b2a_base64(p, newline=False) for p in pngs)
                + b'"]}'
            ),
            5000,
        ),
        base,
    )
    joined = (
        b'{"images":["' + b'","'.join(binascii.b2a_base64(p, newline=False) for p in pngs) + b'"]}'
    )
    today = {"images": [base64.b64encode(p).decode() for p in pngs]}
    print(f"    same parsed answer: {json.loads(joined) == today}")


def binary_section(args: argparse.Namespace) -> None:
    print("\nbinary: 64 decoded images as the answer body (uint8 [64, 28, 28] = 50 KB)")
    floats = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    from app.images import to_pixels

    pixels = to_pixels(floats)
    line("to_pixels (float32 -> uint8, whole batch)", best_us(lambda: to_pixels(floats), 5000))
    line("pixels.tobytes() (a copy)", best_us(pixels.tobytes, 20000))
    line("memoryview(pixels) (zero-copy)", best_us(lambda: memoryview(pixels), 20000))

    def npy_save() -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, pixels)
        return buffer.getvalue()

    header = npy_header(pixels)
    assert header + pixels.tobytes() == npy_save()
    line("np.save into BytesIO (.npy)", best_us(npy_save, 5000))
    line(
        ".npy header built once per shape + tobytes",
        best_us(lambda: header + pixels.tobytes(), 20000),
    )
    line(
        "Starlette Response(tobytes)",
        best_us(lambda: Response(pixels.tobytes(), media_type="x"), 20000),
    )
    line(
        "Starlette Response(memoryview)",
        best_us(lambda: Response(memoryview(pixels).cast("B"), media_type="x"), 20000),
    )


def npy_header(array: np.ndarray) -> bytes:
    """The .npy format 1.0 header for ``array``'s dtype and shape (what np.save writes)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
    return buffer.getvalue()


# --- ipc ---------------------------------------------------------------------------------------


def _echo_worker(connection: Any, reply: bytes) -> None:
    while True:
        message = connection.recv()
        if message is None:
            return
        connection.send(reply)


def _queue_worker(requests: Any, replies: Any, reply: bytes) -> None:
    while True:
        message = requests.get()
        if message is None:
            return
        replies.put(reply)


def _shm_worker(connection: Any, name: str, size: int) -> None:
    memory = shared_memory.SharedMemory(name=name)
    payload = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    while True:
        message = connection.recv_bytes()
        if message == b"stop":
            memory.close()
            return
        memory.buf[:size] = payload
        connection.send_bytes(b"ok")


def _png_loop(seconds: float) -> None:
    from app import images

    pixels = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for p in pixels:
            images.png(p)


def ipc_section(args: argparse.Namespace) -> None:
    print(
        "\nipc: a request to another process and its answer back (64 PNGs, 20 KB), "
        "round trip wall time and the caller's CPU"
    )
    reply = bytes(20_000)
    context = mp.get_context("spawn")

    parent, child = context.Pipe()
    worker = context.Process(target=_echo_worker, args=(child, reply), daemon=True)
    worker.start()
    request = {"z": np.zeros((64, 20), np.float32)}
    measure_round_trip(
        "multiprocessing Pipe (pickle both ways)", lambda: (parent.send(request), parent.recv())
    )
    parent.send(None)
    worker.join()

    requests, replies = context.Queue(), context.Queue()
    worker = context.Process(target=_queue_worker, args=(requests, replies, reply), daemon=True)
    worker.start()
    measure_round_trip(
        "multiprocessing Queue (feeder thread, pickle)",
        lambda: (requests.put(request), replies.get()),
    )
    requests.put(None)
    worker.join()

    memory = shared_memory.SharedMemory(create=True, size=len(reply))
    parent, child = context.Pipe()
    worker = context.Process(target=_shm_worker, args=(child, memory.name, len(reply)), daemon=True)
    worker.start()
    raw = request["z"].tobytes()
    measure_round_trip(
        "shared memory + Pipe bytes for signalling",
        lambda: (parent.send_bytes(raw), parent.recv_bytes(), bytes(memory.buf[: len(reply)])),
    )
    parent.send_bytes(b"stop")
    worker.join()
    memory.close()
    memory.unlink()

    box: list = []
    event, answer = threading.Event(), threading.Event()

    def thread_worker() -> None:
        while True:
            event.wait()
            event.clear()
            if box and box[0] is None:
                return
            box.append(reply)
            answer.set()

    thread = threading.Thread(target=thread_worker, daemon=True)
    thread.start()

    def thread_round_trip() -> None:
        box.clear()
        box.append(request)
        event.set()
        answer.wait()
        answer.clear()

    measure_round_trip("a thread (Event both ways), for comparison", thread_round_trip)
    box.clear()
    box.append(None)
    event.set()

    print(
        "\nipc: the event loop's share of the interpreter lock while 64-PNG batches are "
        "encoded elsewhere (pure-Python request-like work, calls/s)"
    )
    work = json.dumps({"count": 1, "seed": 1, "temperature": 1.0})

    def python_work(seconds: float) -> float:
        calls, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            json.dumps(json.loads(work))
            calls += 1
        return calls / seconds

    seconds = 1.0 if QUICK else 3.0
    alone = python_work(seconds)
    line("alone", alone, unit="calls/s")
    thread = threading.Thread(target=_png_loop, args=(seconds + 0.5,))
    thread.start()
    line("PNG encoding in a thread of this process", python_work(seconds), unit="calls/s")
    thread.join()
    process = context.Process(target=_png_loop, args=(seconds + 3.0,))
    process.start()
    time.sleep(2.0)  # the spawned process imports first
    line("PNG encoding in another process", python_work(seconds), unit="calls/s")
    process.join()


def measure_round_trip(label: str, function: Callable[[], Any], number: int = 2000) -> None:
    if QUICK:
        number //= 5
    for _ in range(100):
        function()
    walls, cpus = [], []
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(number):
            function()
        walls.append((time.perf_counter() - wall) / number * 1e6)
        cpus.append((time.thread_time() - cpu) / number * 1e6)
    print(
        f"  {label:64} {min(walls):7.1f} us round trip, caller CPU "
        f"{statistics.median(cpus):6.1f} us"
    )


SECTIONS = {
    "asgi": asgi_section,
    "service": service_section,
    "handoff": handoff_section,
    "tfcall": tfcall_section,
    "png": png_section,
    "json": json_section,
    "request": request_section,
    "base64": base64_section,
    "binary": binary_section,
    "ipc": ipc_section,
}


def main() -> None:
    global QUICK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--app-root", type=Path, help="service: import app/ from this folder (a prototype copy)"
    )
    args = parser.parse_args()
    QUICK = args.quick
    args.model_dir = args.model_dir.resolve()
    sys.path.insert(0, str(ROOT))
    if args.app_root:
        sys.path.insert(0, str(args.app_root.resolve()))
    if {"png", "tfcall", "asgi", "service"} & set(args.sections):
        import_tensorflow()  # first: TensorFlow's heap changes what zlib and Pillow cost
    for name in args.sections or SECTIONS:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
