"""The digits API: generate from random codes, decode posted codes, encode uploaded images.

Each handler reads the request into model inputs, is admitted (or refused at once, 503), runs
the model through its version's batcher, and answers with a named encoding stage from
``app.responses``. Handlers are ``async`` and never run TensorFlow themselves.
"""

from __future__ import annotations

import random

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.deps import ModelDep
from app.responses import EncodeAnswer, GenerateAnswer, ImagesAnswer
from app.routes.common import (
    IMAGES_RESPONSES,
    OVERLOADED,
    VERSION_NOT_SERVED,
    NrowQuery,
    ScaleQuery,
    UploadedFiles,
    accepted,
    check_png_size,
    check_rows,
    invalid,
    load_images,
    spooled,
)
from app.schemas import (
    DecodeRequest,
    EncodeResponse,
    GenerateRequest,
    GenerateResponse,
    ImagesResponse,
    Problem,
)
from vae_contract import ANY_DIGIT, Signature

# Drawn seeds: a generator seeded once per process. secrets.randbelow read os.urandom on every
# request, a call that gives up the interpreter lock: under load, the event loop then waited
# for the busy inference thread to hand it back (439 µs a request, measured with cProfile).
SEEDS = random.Random()

router = APIRouter(tags=["digits"])
upload_router = APIRouter(tags=["digits"])  # included with multipart limits


def sample_rows(
    count: int, seed: int, temperature: float, digit: int | None
) -> dict[str, np.ndarray]:
    """``sample_batch`` inputs for one request: its ``count`` images are rows 0..count-1 of
    its seed, so the same request always gives the same digits, batched or not."""
    return {
        "seeds": np.full(count, seed, np.int64),
        "indices": np.arange(count, dtype=np.int64),
        "temperatures": np.full(count, temperature, np.float32),
        "digits": np.full(count, ANY_DIGIT if digit is None else digit, np.int32),
    }


@router.post(
    "/v1/generate",
    response_model=GenerateResponse,
    responses=IMAGES_RESPONSES,
    summary="Generate digits from random latent codes",
)
async def generate(
    body: GenerateRequest,
    model: ModelDep,
    request: Request,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """Decode `count` codes drawn from the model's prior. The same `seed` always gives the same
    digits; without one a seed is drawn and returned (in the `X-Seed` header for PNGs).
    `digit` asks for that digit (when `GET /v1/model` says `supports_digit`)."""
    kind = accepted(request)
    check_rows(body.count, ["body", "count"], model.settings)
    check_png_size(kind, body.count, scale, model.settings)
    if body.digit is not None and not model.servable.model.supports_digit:
        raise invalid(
            ["body", "digit"],
            "this model cannot generate a chosen digit (supports_digit is false in "
            "GET /v1/model); retrain it with a per-digit prior",
        )
    seed = SEEDS.getrandbits(31) if body.seed is None else body.seed
    answer = GenerateAnswer(kind, "generate", nrow, scale, seed=seed, digit=body.digit)
    inputs = sample_rows(body.count, seed, body.temperature, body.digit)
    async with model.admission.admit(body.count, "generate"):
        return await model.servable.run(Signature.SAMPLE_BATCH, inputs, answer)


@router.post(
    "/v1/decode",
    response_model=ImagesResponse,
    responses=IMAGES_RESPONSES,
    summary="Decode posted latent codes into digits",
)
async def decode(
    body: DecodeRequest,
    model: ModelDep,
    request: Request,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """One image per row of `latents`; each row has `latent_dim` numbers (see GET /v1/model).
    Posting the `mu` that `/v1/encode` returned reconstructs the uploads."""
    kind = accepted(request)
    rows = len(body.latents)
    check_rows(rows, ["body", "latents"], model.settings)
    check_png_size(kind, rows, scale, model.settings)
    latent_dim = model.servable.model.latent_dim
    for row, code in enumerate(body.latents):
        if len(code) != latent_dim:
            raise invalid(
                ["body", "latents", row],
                f"latent code has {len(code)} numbers, the model needs {latent_dim}",
            )
    answer = ImagesAnswer(kind, "decode", nrow, scale)
    async with model.admission.admit(rows, "decode"):
        return await model.servable.run(
            Signature.DECODE, {"z": np.asarray(body.latents, np.float32)}, answer
        )


@upload_router.post(
    "/v1/encode",
    response_model=EncodeResponse,
    responses={
        400: {"model": Problem, "description": "Not a multipart form, or too many parts"},
        413: {"model": Problem, "description": "Upload or image too large"},
        415: {"model": Problem, "description": "Not an image in an accepted format or mode"},
        422: {"model": Problem, "description": "Corrupt image, or no file"},
        **VERSION_NOT_SERVED,
        **OVERLOADED,
    },
    summary="Encode digit images into μ and σ",
)
async def encode(
    file: UploadedFiles,
    model: ModelDep,
) -> Response:
    """One row of `mu`, `sigma` and `log_var` per uploaded part named `file`, in order.
    Photos and scans are made MNIST-like first: orientation, alpha on white, greyscale,
    dark-on-light inverted, cropped to the digit, fitted in 20×20, centred by mass in 28×28."""
    check_rows(len(file), ["body", "file"], model.settings)
    async with model.admission.admit(len(file), "encode"):
        batch = await load_images(model.uploads, spooled(file))
        return await model.servable.run(Signature.ENCODE, {"images": batch}, EncodeAnswer())
