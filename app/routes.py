"""The HTTP API: generate, decode, encode, model info, health.

Handlers are ``async`` and never run TensorFlow themselves: model calls go through the
``Batcher`` (one inference thread, concurrent requests merged into one call), which also
renders the answer (PNG encoding) off the event loop. Uploads are decoded in the thread pool.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Header, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from app import images, metrics, negotiation
from app.batching import Batcher
from app.config import Settings
from app.model import sample_rows
from app.schemas import (
    DecodeRequest,
    EncodeResponse,
    GenerateRequest,
    GenerateResponse,
    ImagesResponse,
    ModelInfo,
    Problem,
)

router = APIRouter()

PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}},
        "description": "JSON by default; with `Accept: image/png`, the digit itself (one) or a "
        "tiled grid (several).",
    },
    406: {"model": Problem, "description": "Accept allows neither JSON nor PNG"},
    422: {"model": Problem, "description": "Invalid input; the message names the field"},
    503: {"model": Problem, "description": "No model loaded yet"},
}
NrowQuery = Annotated[
    int | None, Query(ge=1, le=256, description="PNG grids: images per row (default: square)")
]
ScaleQuery = Annotated[int, Query(ge=1, le=16, description="PNG only: upscale factor")]


def invalid(loc: list[str | int], message: str, status: int = 422) -> HTTPException:
    """An error in FastAPI's own validation format, naming the offending field."""
    return HTTPException(status, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


# Dependencies are async: FastAPI would run plain functions in its thread pool.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_batcher(request: Request) -> Batcher:
    """The loaded model's batcher, or 503 saying why there is none."""
    batcher = request.app.state.batcher
    if batcher is None:
        raise HTTPException(503, detail=f"model not ready: {request.app.state.model_status}")
    return batcher


BatcherDep = Annotated[Batcher, Depends(get_batcher)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]


def media_type(accept: str | None) -> str:
    chosen = negotiation.choose(accept)
    if chosen is None:
        raise HTTPException(406, detail="Accept must allow application/json or image/png")
    return chosen


def images_response(
    kind: str,
    batch: np.ndarray,
    nrow: int | None,
    scale: int,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A PNG (one digit or a grid), or JSON with ``fields`` and the images as base64 PNGs."""
    if kind == negotiation.PNG:
        return Response(images.grid_png(batch, nrow, scale), media_type="image/png",
                        headers=headers)
    return JSONResponse({**(fields or {}), "images": images.png_base64(batch)})


@router.post(
    "/v1/generate",
    response_model=GenerateResponse,
    responses=PNG_RESPONSE,
    summary="Generate digits from random latent codes",
    tags=["digits"],
)
async def generate(
    body: GenerateRequest,
    batcher: BatcherDep,
    settings: SettingsDep,
    accept: AcceptHeader = None,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """Decode `count` codes drawn from the model's prior. The same `seed` always gives the same
    digits; without one a seed is drawn and returned (in the `X-Seed` header for PNGs).
    `digit` asks for that digit (when `GET /v1/model` says `supports_digit`)."""
    kind = media_type(accept)
    if body.count > settings.max_batch:
        raise invalid(["body", "count"], f"count must be at most {settings.max_batch}")
    if body.digit is not None and not batcher.model.supports_digit:
        raise invalid(
            ["body", "digit"],
            "this model cannot generate a chosen digit (supports_digit is false in "
            "GET /v1/model); retrain it with a per-digit prior",
        )
    seed = secrets.randbelow(2**31) if body.seed is None else body.seed

    def render(outputs: dict[str, np.ndarray]) -> Response:
        metrics.IMAGES.labels("generate").inc(body.count)
        fields = {"latents": outputs["latents"].tolist(), "seed": seed, "digit": body.digit}
        return images_response(kind, outputs["images"], nrow, scale, fields,
                               headers={"X-Seed": str(seed)})

    rows = sample_rows(body.count, seed, body.temperature, body.digit)
    return await batcher.run("sample_batch", then=render, **rows)


@router.post(
    "/v1/decode",
    response_model=ImagesResponse,
    responses=PNG_RESPONSE,
    summary="Decode posted latent codes into digits",
    tags=["digits"],
)
async def decode(
    body: DecodeRequest,
    batcher: BatcherDep,
    settings: SettingsDep,
    accept: AcceptHeader = None,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """One image per row of `latents`; each row has `latent_dim` numbers (see GET /v1/model).
    Posting the `mu` that `/v1/encode` returned reconstructs the uploads."""
    kind = media_type(accept)
    if len(body.latents) > settings.max_batch:
        raise invalid(["body", "latents"], f"at most {settings.max_batch} codes per request")
    latent_dim = batcher.model.latent_dim
    for row, code in enumerate(body.latents):
        if len(code) != latent_dim:
            raise invalid(
                ["body", "latents", row],
                f"latent code has {len(code)} numbers, the model needs {latent_dim}",
            )

    def render(outputs: dict[str, np.ndarray]) -> Response:
        metrics.IMAGES.labels("decode").inc(len(body.latents))
        return images_response(kind, outputs["images"], nrow, scale)

    return await batcher.run("decode", then=render, z=np.asarray(body.latents, np.float32))


@router.post(
    "/v1/encode",
    response_model=EncodeResponse,
    responses={
        413: {"model": Problem, "description": "Upload or image too large"},
        415: {"model": Problem, "description": "Not an image in an accepted format"},
        422: {"model": Problem, "description": "Corrupt image, or no file"},
        503: {"model": Problem, "description": "No model loaded yet"},
    },
    summary="Encode digit images into μ and σ",
    tags=["digits"],
)
async def encode(
    file: Annotated[
        list[UploadFile],
        File(description="One or more digit images (PNG, JPEG, GIF, BMP, WebP, TIFF)"),
    ],
    batcher: BatcherDep,
    settings: SettingsDep,
) -> Response:
    """One row of `mu`, `sigma` and `log_var` per uploaded part named `file`, in order.
    Photos and scans are made MNIST-like first: orientation, alpha on white, greyscale,
    dark-on-light inverted, cropped to the digit, fitted in 20×20, centred by mass in 28×28."""
    if len(file) > settings.max_batch:
        raise invalid(["body", "file"], f"at most {settings.max_batch} files per request")
    batch = []
    for index, upload in enumerate(file):
        name = upload.filename or f"file #{index + 1}"
        data = await upload.read()
        try:
            # Decoding a large photo takes milliseconds: off the event loop.
            batch.append(
                await run_in_threadpool(images.load_upload, data, settings.max_image_pixels, name)
            )
        except images.ImageError as error:
            raise invalid(["body", "file", index], error.message, error.status_code) from None

    def render(outputs: dict[str, np.ndarray]) -> Response:
        metrics.IMAGES.labels("encode").inc(len(batch))
        return JSONResponse({name: outputs[name].tolist() for name in ("mu", "sigma", "log_var")})

    return await batcher.run("encode", then=render, images=np.stack(batch))


@router.get("/v1/model", response_model=ModelInfo, tags=["model"],
            responses={503: {"model": Problem, "description": "No model loaded yet"}})
async def model_info(batcher: BatcherDep) -> dict[str, Any]:
    """The served model: version, latent size, device, training metrics and hyperparameters."""
    return batcher.model.info()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (whether or not a model is loaded)."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"],
            responses={503: {"model": Problem, "description": "No model loaded yet"}})
async def readyz(request: Request) -> Any:
    """Readiness: 200 once a model is loaded and warm, 503 (saying why) until then."""
    batcher = await get_batcher(request)
    return {"status": "ready", "version": batcher.model.version,
            "device": batcher.model.info()["device"]}
