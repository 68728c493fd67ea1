"""The service's two digit endpoints written for LitServe, for the serving benchmark only.

`POST /v1/generate` and `POST /v1/decode` give the same JSON answers and byte-identical PNGs as
the service for the same seed (``serve_bench.py --check`` compares them), from the same
SavedModel (``<model-dir>/vae/<newest>/``, signatures ``sample_batch`` and ``decode``).

Written as LitServe's documentation recommends: one ``LitAPI`` per endpoint with the four
stages ``setup`` / ``decode_request`` / ``predict`` / ``encode_response``, request bodies typed
with pydantic (validated by FastAPI in the HTTP process), and LitServe's dynamic batching
(``max_batch_size``, ``batch_timeout``) with ``batch`` / ``unbatch`` merging the requests' rows
into one SavedModel call. The inference workers are separate processes (LitServe's design), and
``num_api_servers`` is left to LitServe (as many HTTP processes as inference workers).

LitServe does not pass request headers to a LitAPI (Lightning-AI/LitServe#718, where the
suggested workaround is to repack the body), so ``AcceptToBody`` moves a PNG preference and
the ``nrow``/``scale`` query parameters into the JSON body before LitServe reads it.

LitServe is not a dependency of the project: ``serve_bench.py`` installs it when it is missing.
No ``from __future__ import annotations`` here: LitServe reads ``decode_request``'s annotation
as a class to build the FastAPI endpoint, and a string would turn the body into a query parameter.

    VAE_MODEL_DIR=model python benchmarks/litserve_app.py --port 8002
"""

import argparse
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import litserve as ls
import numpy as np
from fastapi import HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.media.pictures import grid_png, png_base64

ANY_DIGIT = -1
MAX_BATCH = int(os.getenv("VAE_MAX_BATCH", "256"))
LatentValue = Annotated[float, Field(allow_inf_nan=False, ge=-1000.0, le=1000.0)]


class PngOptions(BaseModel):
    """Put into the body by ``AcceptToBody`` when the client asked for ``image/png``."""

    nrow: int | None = Field(None, ge=1, le=256)
    scale: int = Field(1, ge=1, le=16)


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, le=MAX_BATCH)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    temperature: float = Field(1.0, ge=0.0, le=10.0, allow_inf_nan=False)
    digit: int | None = Field(None, ge=0, le=9)
    png: PngOptions | None = None


class DecodeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latents: list[list[LatentValue]] = Field(min_length=1, max_length=MAX_BATCH)
    png: PngOptions | None = None


# --- Images: the service's own functions, so the PNG bytes are the same ---------------------


# --- The model ---------------------------------------------------------------------------------


def load_signatures() -> tuple[Any, dict[str, Any]]:
    """The newest SavedModel under $VAE_MODEL_DIR/vae, with TensorFlow's thread pools sized as
    the service's benchmark sizes them ($VAE_INTRA_OP_THREADS, $VAE_INTER_OP_THREADS)."""
    import tensorflow as tf  # in the inference worker only, as LitServe's examples do

    intra = int(os.getenv("VAE_INTRA_OP_THREADS", "0"))
    inter = int(os.getenv("VAE_INTER_OP_THREADS", "0"))
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    base = Path(os.getenv("VAE_MODEL_DIR", "model")) / "vae"
    newest = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
    loaded = tf.saved_model.load(str(base / str(newest)))
    return loaded, dict(loaded.signatures)


def call(signature: Any, **inputs: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    outputs = signature(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
    return {name: tensor.numpy() for name, tensor in outputs.items()}


class _VaeAPI(ls.LitAPI):
    signature_name = ""

    def setup(self, device: str) -> None:
        self._loaded, signatures = load_signatures()
        self.signature = signatures[self.signature_name]
        self.supports_digit = "sample_digit" in signatures
        self.latent_dim = int(signatures["decode"].structured_input_signature[1]["z"].shape[1])

    def batch(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """The requests' rows concatenated into one call; ``requests`` keeps who asked what."""
        names = inputs[0]["rows"].keys()
        return {
            "rows": {n: np.concatenate([i["rows"][n] for i in inputs]) for n in names},
            "requests": inputs,
        }

    def predict(self, x: dict[str, Any]) -> dict[str, Any]:
        return {"outputs": call(self.signature, **x["rows"]), "requests": x["requests"]}

    def unbatch(self, output: dict[str, Any]) -> list[dict[str, Any]]:
        answers, start = [], 0
        for request in output["requests"]:
            count = len(next(iter(request["rows"].values())))
            rows = {k: v[start : start + count] for k, v in output["outputs"].items()}
            answers.append({**request, "outputs": rows})
            start += count
        return answers


class GenerateAPI(_VaeAPI):
    signature_name = "sample_batch"

    def decode_request(self, request: GenerateBody) -> dict[str, Any]:
        if request.digit is not None and not self.supports_digit:
            raise HTTPException(422, "this model cannot generate a chosen digit")
        seed = secrets.randbelow(2**31) if request.seed is None else request.seed
        n = request.count
        rows = {
            "seeds": np.full(n, seed, np.int64),
            "indices": np.arange(n, dtype=np.int64),
            "temperatures": np.full(n, request.temperature, np.float32),
            "digits": np.full(n, ANY_DIGIT if request.digit is None else request.digit, np.int32),
        }
        return {"rows": rows, "seed": seed, "digit": request.digit, "png": request.png}

    def encode_response(self, output: dict[str, Any]) -> Any:
        images = output["outputs"]["images"]
        if output["png"] is not None:
            return Response(
                grid_png(images, output["png"].nrow, output["png"].scale),
                media_type="image/png",
                headers={"X-Seed": str(output["seed"])},
            )
        return {
            "latents": output["outputs"]["latents"].tolist(),
            "seed": output["seed"],
            "digit": output["digit"],
            "images": png_base64(images),
        }


class DecodeAPI(_VaeAPI):
    signature_name = "decode"

    def decode_request(self, request: DecodeBody) -> dict[str, Any]:
        for row, code in enumerate(request.latents):
            if len(code) != self.latent_dim:
                raise HTTPException(
                    422,
                    f"latent code {row} has {len(code)} numbers, the model needs {self.latent_dim}",
                )
        return {"rows": {"z": np.asarray(request.latents, np.float32)}, "png": request.png}

    def encode_response(self, output: dict[str, Any]) -> Any:
        images = output["outputs"]["images"]
        if output["png"] is not None:
            return Response(
                grid_png(images, output["png"].nrow, output["png"].scale), media_type="image/png"
            )
        return {"images": png_base64(images)}


class AcceptToBody:
    """Pure ASGI: when ``Accept`` prefers ``image/png`` (names it without
    ``application/json``), move that and the ``nrow``/``scale`` query parameters into the JSON
    body as ``"png": {...}``, since LitServe hands a LitAPI the body only."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._acceptable(scope):  # as the service: 406
            await send(
                {
                    "type": "http.response.start",
                    "status": 406,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b'{"detail":"Accept must allow application/json or image/png"}',
                }
            )
            return
        if scope["type"] != "http" or not self._wants_png(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            body = None
        if isinstance(body, dict):
            query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
            body["png"] = {k: query[k] for k in ("nrow", "scale") if k in query}
            data = json.dumps(body).encode()
        else:
            data = b"".join(chunks)  # let FastAPI report the bad body
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

    @staticmethod
    def _acceptable(scope: dict) -> bool:
        accept = dict(scope["headers"]).get(b"accept", b"*/*").lower()
        return not accept.strip() or any(
            offer in accept for offer in (b"json", b"image/png", b"*/*", b"image/*")
        )

    @staticmethod
    def _wants_png(scope: dict) -> bool:
        accept = dict(scope["headers"]).get(b"accept", b"").lower()
        return b"image/png" in accept and b"application/json" not in accept


def build_server(
    max_batch_size: int, batch_timeout: float, fast_queue: bool, workers_per_device: int
) -> ls.LitServer:
    """Both endpoints on one LitServer, CPU inference workers."""
    apis = [
        GenerateAPI(
            api_path="/v1/generate", max_batch_size=max_batch_size, batch_timeout=batch_timeout
        ),
        DecodeAPI(
            api_path="/v1/decode", max_batch_size=max_batch_size, batch_timeout=batch_timeout
        ),
    ]
    return ls.LitServer(
        apis,
        accelerator="cpu",
        workers_per_device=workers_per_device,
        fast_queue=fast_queue,
        middlewares=[AcceptToBody],
        timeout=30,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=64,
        help="requests LitServe merges into one predict call",
    )
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=0.001,
        help="seconds LitServe waits for a batch to fill (measured: 0.005 and "
        "0.01 halve 1-client rates, 0 busy-waits and worsens p99)",
    )
    parser.add_argument(
        "--fast-queue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ZeroMQ between HTTP and inference processes, LitServe's advice "
        "above 100 requests/s (measured here: generate at 16 clients 653 -> 861)",
    )
    parser.add_argument("--workers-per-device", type=int, default=1)
    parser.add_argument(
        "--num-api-servers",
        type=int,
        default=None,
        help="HTTP processes (LitServe's default: one per inference worker)",
    )
    args = parser.parse_args()
    server = build_server(
        args.max_batch_size, args.batch_timeout, args.fast_queue, args.workers_per_device
    )
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=args.num_api_servers,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
