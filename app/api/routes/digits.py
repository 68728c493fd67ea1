"""The digits API: generate from random codes, decode posted codes, encode uploaded images.

Each handler reads the request into model inputs, is admitted (or refused at once, 503), runs
the model (``model.run``: its version's batcher) and answers with a named encoding stage from
``app.api.answers``. Handlers are ``async`` and never run TensorFlow themselves.
"""

from __future__ import annotations

import random

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.answers import EncodeAnswer, GenerateAnswer, ImagesAnswer
from app.api.deps import ModelDep
from app.api.errors import invalid
from app.api.latent import sample_rows
from app.api.limits import check_codes, check_png_size, check_rows
from app.api.openapi import IMAGES_RESPONSES, OVERLOADED, VERSION_NOT_SERVED
from app.api.params import NrowQuery, ScaleQuery, UploadedFiles, accepted
from app.api.schemas import (
    DecodeRequest,
    EncodeResponse,
    GenerateRequest,
    GenerateResponse,
    ImagesResponse,
    Problem,
)
from vae_contract import Signature

# Drawn seeds: a generator seeded once per process. secrets.randbelow read os.urandom on every
# request, a call that gives up the interpreter lock: under load, the event loop then waited
# for the busy inference thread to hand it back (439 µs a request, measured with cProfile).
SEEDS = random.Random()

router = APIRouter(tags=["digits"])
upload_router = APIRouter(tags=["digits"])  # included with multipart limits


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
    async with model.admit(body.count, "generate"):
        return await model.run(Signature.SAMPLE_BATCH, inputs, answer)


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
    codes = check_codes(body.latents, model.servable.model.latent_dim, ["body", "latents"])
    answer = ImagesAnswer(kind, "decode", nrow, scale)
    async with model.admit(rows, "decode"):
        return await model.run(Signature.DECODE, {"z": codes}, answer)


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
async def encode(file: UploadedFiles, model: ModelDep) -> Response:
    """One row of `mu`, `sigma` and `log_var` per uploaded part named `file`, in order.
    Photos and scans are made MNIST-like first: orientation, alpha on white, greyscale,
    dark-on-light inverted, cropped to the digit, fitted in 20×20, centred by mass in 28×28."""
    check_rows(len(file), ["body", "file"], model.settings)
    async with model.admit(len(file), "encode"):
        batch: np.ndarray = await model.uploads.read(file)
        return await model.run(Signature.ENCODE, {"images": batch}, EncodeAnswer())
