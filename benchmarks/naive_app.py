"""The service's digit endpoints written the tutorial way, for the serving benchmark only.

Synchronous ``def`` endpoints (FastAPI runs them in its thread pool), the SavedModel loaded once
at start, one SavedModel call per request (no batching, no admission control, no limits), and
a Pillow PNG per image. Same JSON answers and byte-identical PNGs as the service for the same
seed, from the same SavedModel (``$VAE_MODEL_DIR/vae/<newest>/``): ``serve_bench.py`` compares
them before it measures.

    VAE_MODEL_DIR=model uvicorn benchmarks.naive_app:app --port 8003
"""

from __future__ import annotations

import base64
import io
import os
import random
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tensorflow as tf
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field

tf.config.threading.set_intra_op_parallelism_threads(int(os.getenv("VAE_INTRA_OP_THREADS", "1")))
tf.config.threading.set_inter_op_parallelism_threads(int(os.getenv("VAE_INTER_OP_THREADS", "1")))
BASE = Path(os.getenv("VAE_MODEL_DIR", "model")) / "vae"
VERSION = max(int(p.name) for p in BASE.iterdir() if p.name.isdigit())
SIGNATURES = tf.saved_model.load(str(BASE / str(VERSION))).signatures
SEEDS = random.Random()

app = FastAPI()


class GenerateBody(BaseModel):
    count: int = Field(1, ge=1, le=256)
    seed: int | None = Field(None, ge=0, le=2**53 - 1)
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    digit: int | None = Field(None, ge=0, le=9)


class DecodeBody(BaseModel):
    latents: list[list[float]] = Field(min_length=1, max_length=256)


def pixels(images: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.nan_to_num(images), 0, 1) * 255).astype(np.uint8)


def png(image: np.ndarray, scale: int = 1) -> bytes:
    picture = Image.fromarray(image, mode="L")
    if scale > 1:
        size = (picture.width * scale, picture.height * scale)
        picture = picture.resize(size, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def grid(images: np.ndarray, nrow: int | None, scale: int) -> bytes:
    """The service's grid: the digit itself for one, else rows with 2 black pixels between."""
    if len(images) == 1:
        return png(images[0], scale)
    n = len(images)
    columns = min(nrow or int(np.ceil(np.sqrt(n))), n)
    rows = -(-n // columns)
    canvas = np.zeros((rows * 30 + 2, columns * 30 + 2), np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        canvas[2 + r * 30 : 2 + r * 30 + 28, 2 + c * 30 : 2 + c * 30 + 28] = image
    return png(canvas, scale)


def answer(
    request: Request, images: np.ndarray, fields: dict[str, Any], nrow: int | None, scale: int
) -> Response:
    accept = request.headers.get("accept", "")
    batch = pixels(images)
    if "image/png" in accept:
        return Response(grid(batch, nrow, scale), media_type="image/png")
    if "application/x-npy" in accept:
        buffer = io.BytesIO()
        np.save(buffer, batch, allow_pickle=False)
        return Response(buffer.getvalue(), media_type="application/x-npy")
    images_b64 = [base64.b64encode(png(image)).decode("ascii") for image in batch]
    return JSONResponse({**fields, "images": images_b64})


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/v1/generate")
def generate(
    body: GenerateBody,
    request: Request,
    nrow: Annotated[int | None, Query()] = None,
    scale: Annotated[int, Query()] = 1,
) -> Response:
    seed = SEEDS.getrandbits(31) if body.seed is None else body.seed
    rows = body.count
    out = SIGNATURES["sample_batch"](
        seeds=tf.constant([seed] * rows, tf.int64),
        indices=tf.range(rows, dtype=tf.int64),
        temperatures=tf.constant([body.temperature] * rows, tf.float32),
        digits=tf.constant([-1 if body.digit is None else body.digit] * rows, tf.int32),
    )
    fields = {"latents": out["latents"].numpy().tolist(), "seed": seed, "digit": body.digit}
    return answer(request, out["images"].numpy(), fields, nrow, scale)


@app.post("/v1/decode")
def decode(
    body: DecodeBody,
    request: Request,
    nrow: Annotated[int | None, Query()] = None,
    scale: Annotated[int, Query()] = 1,
) -> Response:
    out = SIGNATURES["decode"](z=tf.constant(body.latents, tf.float32))
    return answer(request, out["images"].numpy(), {}, nrow, scale)
