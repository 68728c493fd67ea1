"""The latent explorer's API: follow an upload through the model (reconstruct), walk between
two digits (interpolate) or along one axis (traverse), and say how digit-like an image is
(score: an importance-weighted estimate of log p(x), placed among test digits).

Each handler has the shape of ``app.api.routes.digits``: read the request into model inputs,
be admitted, run the model (``decode``, ``encode``, ``log_weights``) and answer with a named
encoding stage from ``app.api.answers``. ``interpolate`` and ``score`` take JSON (codes or
seeds) or uploads on one path: two operations each, both parsed by FastAPI (the uploads one is
an ``UploadsRoute``, which matches multipart requests only).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File
from starlette.requests import Request
from starlette.responses import Response

from app.api import latent
from app.api.answers import PairsAnswer, PathAnswer, ReconstructAnswer, ScoreAnswer
from app.api.deps import ModelContext, ModelDep
from app.api.errors import invalid
from app.api.limits import (
    check_codes,
    check_files,
    check_png_size,
    check_rows,
    check_score_work,
    check_steps,
)
from app.api.openapi import (
    IMAGES_RESPONSES,
    OVERLOADED,
    UPLOAD_ERRORS,
    VERSION_NOT_SERVED,
)
from app.api.params import (
    NrowQuery,
    ScaleQuery,
    UploadedFiles,
    UploadsRoute,
    accepted,
    json_or_uploads,
)
from app.api.schemas import (
    InterpolateRequest,
    InterpolateResponse,
    InterpolateUploads,
    PathMethod,
    Problem,
    ReconstructResponse,
    ScoreRequest,
    ScoreResponse,
    ScoreUploads,
    TraverseRequest,
    TraverseResponse,
)
from app.edge import negotiation
from vae_contract import Signature

JSON_OR_PNG = (negotiation.JSON, negotiation.PNG)

router = APIRouter(tags=["explore"])
# Multipart operations, included with the upload limits; registered before `codes_router`,
# whose operations on the same paths take every request that is not multipart.
upload_router = APIRouter(tags=["explore"])
uploads_router = APIRouter(tags=["explore"], route_class=UploadsRoute)
codes_router = APIRouter(
    tags=["explore"],
    dependencies=[Depends(json_or_uploads)],
    strict_content_type=False,  # a body without a Content-Type is read as JSON
)

SCORE_RESPONSES = {
    406: {"model": Problem, "description": "Accept does not allow JSON"},
    422: {"model": Problem, "description": "Invalid input; the message names the field"},
    **UPLOAD_ERRORS,
    **VERSION_NOT_SERVED,
    **OVERLOADED,
}


async def log_weights(
    model: ModelContext, batch: np.ndarray, samples: int, seed: int
) -> np.ndarray:
    """``log_weights`` [N, samples] of the images: one call, whose draws are keyed by the seed
    alone (the contract), so an image scores the same alone or beside others."""
    inputs = {
        "images": batch,
        "samples": np.array(samples, np.int32),
        "seed": np.array(seed, np.int64),
    }
    return (await model.run(Signature.LOG_WEIGHTS, inputs))["log_weights"]


# --- reconstruct --------------------------------------------------------------------------------


@upload_router.post(
    "/v1/reconstruct",
    response_model=ReconstructResponse,
    responses={
        200: {
            "content": {negotiation.PNG: {}},
            "description": "JSON by default; with `Accept: image/png` one PNG: the inputs "
            "as the model saw them in the top row, their reconstructions below.",
        },
        406: {"model": Problem, "description": "Accept allows neither JSON nor PNG"},
        422: {"model": Problem, "description": "Corrupt image, no file, or too many to score"},
        **UPLOAD_ERRORS,
        **VERSION_NOT_SERVED,
        **OVERLOADED,
    },
    summary="Follow uploads through the model: input, μ, σ, reconstruction, score",
)
async def reconstruct(
    file: UploadedFiles,
    model: ModelDep,
    request: Request,
    scale: ScaleQuery = 1,
) -> Response:
    """For each part named `file`: the 28×28 input the model saw (after the MNIST-style
    preprocessing of `/v1/encode`), μ and σ of its code, the reconstruction (μ decoded), and
    an importance-weighted estimate of log p(x) with its percentile among test digits (as
    `/v1/score`)."""
    kind = accepted(request, JSON_OR_PNG)
    rows = len(file)
    check_rows(rows, ["body", "file"], model.settings)
    reference = model.servable.model.metadata.score_reference
    samples, seed = latent.score_settings(reference)
    if kind == negotiation.PNG:
        check_png_size(kind, 2 * rows, scale, model.settings)
    else:
        check_score_work(rows, samples, ["body", "file"], model.settings)
    async with model.admit(rows, "reconstruct"):
        batch = await model.uploads.read(file)
        encoded = await model.run(Signature.ENCODE, {"images": batch})
        if kind == negotiation.PNG:
            pairs = PairsAnswer(batch, scale)
            return await model.run(Signature.DECODE, {"z": encoded["mu"]}, pairs)
        weights = await log_weights(model, batch, samples, seed)
        answer = ReconstructAnswer(
            samples, seed, reference, inputs=batch, encoded=encoded, log_weights=weights
        )
        return await model.run(Signature.DECODE, {"z": encoded["mu"]}, answer)


# --- interpolate --------------------------------------------------------------------------------


@uploads_router.post(
    "/v1/interpolate",
    # Exactly two files; more fail while the form is parsed (400), as the body is read.
    form_limits={"max_files": 2},
)
async def interpolate_uploads(
    form: Annotated[InterpolateUploads, File()],
    model: ModelDep,
    request: Request,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """The path between the codes (μ) of two uploaded images."""
    kind = accepted(request)
    check_files(len(form.file), 2, 2)
    check_steps(form.steps, model.settings)
    check_png_size(kind, form.steps, scale, model.settings)
    async with model.admit(form.steps, "interpolate"):
        batch = await model.uploads.read(form.file)
        ends = (await model.run(Signature.ENCODE, {"images": batch}))["mu"]
        return await decode_path(model, kind, ends, form.steps, form.method, nrow, scale)


@codes_router.post(
    "/v1/interpolate",
    response_model=InterpolateResponse,
    responses={**IMAGES_RESPONSES, **UPLOAD_ERRORS},
    summary="Decode the path between two digits",
)
async def interpolate(
    body: InterpolateRequest,
    model: ModelDep,
    request: Request,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """`steps` codes from one end to the other (both included), decoded. The ends are two
    codes (`latents`), two seeds (`seeds`: image 0 of `/v1/generate` with each seed, with
    optional `digits` and `temperature`), or, as multipart, two image files (parts named
    `file`: the ends are their μ) with form fields `steps` and `method`. `method` is `linear`
    or `spherical` (slerp, suited to prior samples; the default between seeds). A PNG answer
    is one strip (`nrow` defaults to `steps`)."""
    kind = accepted(request)
    method = body.method or ("spherical" if body.seeds is not None else "linear")
    check_steps(body.steps, model.settings)
    check_png_size(kind, body.steps, scale, model.settings)
    vae = model.servable.model
    codes = None
    if body.latents is not None:
        codes = check_codes(body.latents, vae.latent_dim, ["body", "latents"])
    if body.digits is not None and not vae.supports_digit:
        raise invalid(
            ["body", "digits"],
            "this model cannot generate a chosen digit (supports_digit is false in GET /v1/model)",
        )
    async with model.admit(body.steps, "interpolate"):
        if codes is None:
            assert body.seeds is not None
            codes = await seed_codes(model, body.seeds, body.digits, body.temperature)
        return await decode_path(model, kind, codes, body.steps, method, nrow, scale)


async def seed_codes(
    model: ModelContext, seeds: list[int], digits: list[int | None] | None, temperature: float
) -> np.ndarray:
    """The codes of image 0 of each seed, as ``/v1/generate`` draws them: [2, D]."""
    rows = [
        latent.sample_rows(1, seed, temperature, digit)
        for seed, digit in zip(seeds, digits or [None] * len(seeds), strict=True)
    ]
    inputs = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    return (await model.run(Signature.SAMPLE_BATCH, inputs))["latents"]


async def decode_path(
    model: ModelContext,
    kind: str,
    ends: np.ndarray,
    steps: int,
    method: PathMethod,
    nrow: int | None,
    scale: int,
) -> Response:
    """The path from ``ends[0]`` to ``ends[1]``, decoded and answered as ``kind``."""
    path = latent.interpolate(ends[0], ends[1], steps, method)
    answer = PathAnswer(
        kind, "interpolate", nrow or steps, scale, latents=path, extra={"method": method}
    )
    return await model.run(Signature.DECODE, {"z": path}, answer)


# --- traverse -----------------------------------------------------------------------------------


@router.post(
    "/v1/traverse",
    response_model=TraverseResponse,
    responses=IMAGES_RESPONSES,
    summary="Walk from a code along one axis",
)
async def traverse(
    body: TraverseRequest,
    model: ModelDep,
    request: Request,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """Decode `steps` codes `latent + o·σ·u` for offsets `o` evenly from `range[0]` to
    `range[1]`, where `u` is the axis (a principal axis of the training encodings, or one
    latent coordinate) and `σ` the training codes' standard deviation along it. Without
    `latent`, the walk starts from the training codes' mean. A PNG answer is one strip."""
    kind = accepted(request)
    check_steps(body.steps, model.settings)
    check_png_size(kind, body.steps, scale, model.settings)
    vae = model.servable.model
    axes = vae.metadata.latent_axes
    if body.axis >= vae.latent_dim:
        raise invalid(["body", "axis"], f"axis must be below latent_dim ({vae.latent_dim})")
    if body.basis == "principal" and axes is None:
        raise invalid(
            ["body", "basis"],
            'this model was exported without latent_axes: use "basis": "dimension"',
        )
    if body.latent is not None:
        start = check_codes([body.latent], vae.latent_dim, ["body", "latent"])[0]
    elif axes is not None:
        start = np.asarray(axes.mean, np.float32)
    else:
        start = np.zeros(vae.latent_dim, np.float32)
    unit, spread = latent.direction(axes, body.basis, body.axis, vae.latent_dim)
    low, high = body.range
    offsets, codes = latent.traverse(start, unit, spread, low, high, body.steps)
    answer = PathAnswer(
        kind,
        "traverse",
        nrow or body.steps,
        scale,
        latents=codes,
        extra={"offsets": [round(float(o), 6) for o in offsets], "sigma": round(spread, 6)},
    )
    async with model.admit(body.steps, "traverse"):
        return await model.run(Signature.DECODE, {"z": codes}, answer)


# --- score --------------------------------------------------------------------------------------


@uploads_router.post("/v1/score")
async def score_uploads(
    form: Annotated[ScoreUploads, File()], model: ModelDep, request: Request
) -> Response:
    """log p(x) of uploaded images."""
    accepted(request, (negotiation.JSON,))
    answer = score_answer(model)
    files = form.file
    check_files(len(files), 1, model.settings.max_batch)
    check_score_work(len(files), answer.samples, ["body", "file"], model.settings)
    async with model.admit(len(files), "score"):
        batch = await model.uploads.read(files)
        weights = await log_weights(model, batch, answer.samples, answer.seed)
    # A few numbers: encoded here rather than queued for the inference thread.
    return answer.encode({"log_weights": weights})


@codes_router.post(
    "/v1/score",
    response_model=ScoreResponse,
    responses=SCORE_RESPONSES,
    summary="How digit-like: log p(x) and its percentile among test digits",
)
async def score(body: ScoreRequest, model: ModelDep, request: Request) -> Response:
    """An importance-weighted (IWAE) estimate of log p(x) for each image, in nats: the log of
    the mean of p(x|z)p(z)/q(z|x) over the model's reference number of samples z ~ q(z|x)
    (`log_weights`, each image alone), with the reference's seed: the same image always gets
    the same score, comparable with the test digits'; `percentile` says where it falls among
    them. Post image files (multipart, parts named `file`: made MNIST-like as in
    `/v1/encode`) or codes (JSON `latents`: each is decoded and the decoded digit is
    scored)."""
    accepted(request, (negotiation.JSON,))
    answer = score_answer(model)
    rows = len(body.latents)
    check_rows(rows, ["body", "latents"], model.settings)
    check_score_work(rows, answer.samples, ["body", "latents"], model.settings)
    codes = check_codes(body.latents, model.servable.model.latent_dim, ["body", "latents"])
    async with model.admit(rows, "score"):
        decoded = await model.run(Signature.DECODE, {"z": codes})
        weights = await log_weights(model, decoded["images"], answer.samples, answer.seed)
    return answer.encode({"log_weights": weights})


def score_answer(model: ModelContext) -> ScoreAnswer:
    """Scores as the version's score reference computed them (samples, seed), to compare."""
    reference = model.servable.model.metadata.score_reference
    samples, seed = latent.score_settings(reference)
    return ScoreAnswer(samples, seed, reference)
