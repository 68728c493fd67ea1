"""The latent explorer's API: follow an upload through the model (reconstruct), walk between
two digits (interpolate) or along one axis (traverse), and say how digit-like an image is
(score: an importance-weighted estimate of log p(x), placed among test digits). Also the
served version's report pictures.

Each handler has the shape of ``app.routes.digits``: read the request into model inputs, be
admitted, run the model through its version's batcher (``decode``, ``encode``,
``log_weights``), and answer with a named encoding stage from ``app.responses``.
``interpolate`` and ``score`` take JSON (codes or seeds) or multipart uploads on one path, so
they read their body themselves (``read_json``, ``read_files``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from app import latent, negotiation
from app.config import Settings
from app.deps import ModelDep, ServedDep
from app.lifecycle import Servable
from app.responses import PairsAnswer, PathAnswer, ReconstructAnswer, ScoreAnswer
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
from app.routes.digits import sample_rows
from app.schemas import (
    InterpolateRequest,
    InterpolateResponse,
    PathForm,
    Problem,
    ReconstructResponse,
    ReportPictures,
    ScoreRequest,
    ScoreResponse,
    TraverseRequest,
    TraverseResponse,
)
from vae_contract import REPORT_DIR, Signature

router = APIRouter(tags=["explore"])
upload_router = APIRouter(tags=["explore"])  # included with multipart limits

JSON_OR_PNG = (negotiation.JSON, negotiation.PNG)
MULTIPART = "multipart/form-data"
FORM_FIELDS = 8
FORM_FIELD_BYTES = 65536
PICTURE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$"

UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "Not parseable as JSON or as a multipart form, or too many parts",
    },
    413: {"model": Problem, "description": "Upload or image too large"},
    415: {
        "model": Problem,
        "description": "Not an image in an accepted format, or a body "
        "that is neither JSON nor multipart/form-data",
    },
}

Body = TypeVar("Body", bound=BaseModel)


class NoFields(BaseModel):
    """A multipart body of files only."""

    model_config = ConfigDict(extra="forbid")


# --- reading requests ---------------------------------------------------------------------------


def is_multipart(request: Request) -> bool:
    """Multipart uploads, or JSON (the default); 415 for anything else."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == MULTIPART:
        return True
    if content_type in ("", negotiation.JSON) or content_type.endswith("+json"):
        return False
    raise HTTPException(
        415,
        detail=f"send {negotiation.JSON} (codes or seeds) or {MULTIPART} "
        "(image files in parts named file)",
    )


def body_errors(
    error: ValidationError, prefix: tuple[str, ...] = ("body",)
) -> RequestValidationError:
    """A pydantic error as FastAPI's own 422, its locations under ``body``."""
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in error.errors()])


async def read_json(request: Request, model: type[Body]) -> Body:
    """The JSON body validated by ``model`` (strict, as FastAPI's bodies are); 422 if not."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise body_errors(error) from None


async def read_files(
    request: Request, form: type[Body], max_files: int
) -> tuple[list[tuple[str, bytes]], Body]:
    """The uploaded files (parts named ``file``: name and bytes, in order) and the other
    fields validated by ``form``. The body's size is bounded upstream (VAE_MAX_UPLOAD_BYTES)."""
    async with request.form(
        max_files=max_files, max_fields=FORM_FIELDS, max_part_size=FORM_FIELD_BYTES
    ) as parts:
        files: list[tuple[str, bytes]] = []
        fields: dict[str, str] = {}
        for key, value in parts.multi_items():
            if isinstance(value, StarletteUpload):
                if key != "file":
                    raise invalid(["body", key], "files go in parts named file")
                files.append((value.filename or f"file #{len(files) + 1}", await value.read()))
            else:
                fields[key] = value
    try:
        options = form.model_validate(fields)
    except ValidationError as error:
        raise body_errors(error) from None
    return files, options


# --- checks -------------------------------------------------------------------------------------


def check_codes(codes: list[list[float]], latent_dim: int, field: list[str | int]) -> np.ndarray:
    """Each code has ``latent_dim`` numbers; float32 [N, D]."""
    for row, code in enumerate(codes):
        if len(code) != latent_dim:
            raise invalid(
                [*field, row], f"latent code has {len(code)} numbers, the model needs {latent_dim}"
            )
    return np.asarray(codes, np.float32)


def check_steps(steps: int, settings: Settings) -> None:
    """At most VAE_MAX_STEPS images on a path."""
    if steps > settings.max_steps:
        raise invalid(["body", "steps"], f"at most {settings.max_steps} steps (VAE_MAX_STEPS)")


def check_score_work(rows: int, samples: int, field: list[str | int], settings: Settings) -> None:
    """Scoring costs a decoder pass per importance sample: at most VAE_MAX_SCORE_SAMPLES."""
    if rows * samples > settings.max_score_samples:
        most = settings.max_score_samples // samples
        raise invalid(
            field,
            f"at most {most} images per request: each is scored with {samples} "
            f"importance samples, and VAE_MAX_SCORE_SAMPLES is "
            f"{settings.max_score_samples}",
        )


def check_files(files: list[tuple[str, bytes]], low: int, high: int) -> None:
    if not low <= len(files) <= high:
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise invalid(
            ["body", "file"], f"send {wanted} files in parts named file, not {len(files)}"
        )


async def log_weights(servable: Servable, batch: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """``log_weights`` [N, samples] of the images: one call, whose draws are keyed by the seed
    alone (the contract), so an image scores the same alone or beside others."""
    outputs = await servable.run(
        Signature.LOG_WEIGHTS,
        {
            "images": batch,
            "samples": np.array(samples, np.int32),
            "seed": np.array(seed, np.int64),
        },
    )
    return outputs["log_weights"]


def request_body(json_model: type[BaseModel], form: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a body that is JSON or multipart (the docs page offers both)."""
    schema = json_model.model_json_schema()
    examples = schema.pop("examples", [])
    return {
        "requestBody": {
            "required": True,
            "content": {
                negotiation.JSON: {
                    "schema": schema,
                    "examples": {f"example {i + 1}": {"value": v} for i, v in enumerate(examples)},
                },
                MULTIPART: {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "Image files (PNG, JPEG, GIF, BMP, WebP, TIFF)",
                            },
                            **form,
                        },
                    }
                },
            },
        }
    }


# --- endpoints ----------------------------------------------------------------------------------


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
    servable, settings = model.servable, model.settings
    admission, uploads = model.admission, model.uploads
    kind = accepted(request, JSON_OR_PNG)
    rows = len(file)
    check_rows(rows, ["body", "file"], settings)
    reference = servable.model.metadata.score_reference
    samples, seed = latent.score_settings(reference)
    if kind == negotiation.PNG:
        check_png_size(kind, 2 * rows, scale, settings)
    else:
        check_score_work(rows, samples, ["body", "file"], settings)
    async with admission.admit(rows, "reconstruct"):
        batch = await load_images(uploads, spooled(file))
        encoded = await servable.run(Signature.ENCODE, {"images": batch})
        if kind == negotiation.PNG:
            return await servable.run(
                Signature.DECODE, {"z": encoded["mu"]}, PairsAnswer(batch, scale)
            )
        weights = await log_weights(servable, batch, samples, seed)
        answer = ReconstructAnswer(
            samples, seed, reference, inputs=batch, encoded=encoded, log_weights=weights
        )
        return await servable.run(Signature.DECODE, {"z": encoded["mu"]}, answer)


@router.post(
    "/v1/interpolate",
    response_model=InterpolateResponse,
    responses={**IMAGES_RESPONSES, **UPLOAD_ERRORS},
    summary="Decode the path between two digits",
    openapi_extra=request_body(
        InterpolateRequest,
        {
            "steps": {"type": "integer", "minimum": 2, "default": 8},
            "method": {"type": "string", "enum": ["linear", "spherical"], "default": "linear"},
        },
    ),
)
async def interpolate(
    request: Request,
    model: ModelDep,
    nrow: NrowQuery = None,
    scale: ScaleQuery = 1,
) -> Response:
    """`steps` codes from one end to the other (both included), decoded. The ends are two
    codes (`latents`), two seeds (`seeds`: image 0 of `/v1/generate` with each seed, with
    optional `digits` and `temperature`), or, as multipart, two image files (parts named
    `file`: the ends are their μ) with form fields `steps` and `method`. `method` is `linear`
    or `spherical` (slerp, suited to prior samples; the default between seeds). A PNG answer
    is one strip (`nrow` defaults to `steps`)."""
    servable, settings = model.servable, model.settings
    admission, uploads = model.admission, model.uploads
    kind = accepted(request)
    body: InterpolateRequest | None = None
    files: list[tuple[str, bytes]] = []
    if is_multipart(request):
        files, form = await read_files(request, PathForm, max_files=2)
        check_files(files, 2, 2)
        steps, method = form.steps, form.method
    else:
        body = await read_json(request, InterpolateRequest)
        steps = body.steps
        method = body.method or ("spherical" if body.seeds is not None else "linear")
    check_steps(steps, settings)
    check_png_size(kind, steps, scale, settings)
    codes = None
    if body is not None and body.latents is not None:
        codes = check_codes(body.latents, servable.model.latent_dim, ["body", "latents"])
    if body is not None and body.digits is not None and not servable.model.supports_digit:
        raise invalid(
            ["body", "digits"],
            "this model cannot generate a chosen digit (supports_digit is false in GET /v1/model)",
        )
    async with admission.admit(steps, "interpolate"):
        if files:
            ends = (
                await servable.run(Signature.ENCODE, {"images": await load_images(uploads, files)})
            )["mu"]
        elif codes is None:
            assert body is not None and body.seeds is not None
            ends = await seed_codes(servable, body.seeds, body.digits, body.temperature)
        else:
            ends = codes
        path = latent.interpolate(ends[0], ends[1], steps, method)
        answer = PathAnswer(
            kind, "interpolate", nrow or steps, scale, latents=path, extra={"method": method}
        )
        return await servable.run(Signature.DECODE, {"z": path}, answer)


async def seed_codes(
    servable: Servable, seeds: list[int], digits: list[int | None] | None, temperature: float
) -> np.ndarray:
    """The codes of image 0 of each seed, as ``/v1/generate`` draws them: [2, D]."""
    rows = [
        sample_rows(1, seed, temperature, digit)
        for seed, digit in zip(seeds, digits or [None] * len(seeds), strict=True)
    ]
    inputs = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    return (await servable.run(Signature.SAMPLE_BATCH, inputs))["latents"]


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
    servable, settings, admission = model.servable, model.settings, model.admission
    kind = accepted(request)
    check_steps(body.steps, settings)
    check_png_size(kind, body.steps, scale, settings)
    vae = servable.model
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
    async with admission.admit(body.steps, "traverse"):
        return await servable.run(Signature.DECODE, {"z": codes}, answer)


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    responses={
        406: {"model": Problem, "description": "Accept does not allow JSON"},
        422: {"model": Problem, "description": "Invalid input; the message names the field"},
        **UPLOAD_ERRORS,
        **VERSION_NOT_SERVED,
        **OVERLOADED,
    },
    summary="How digit-like: log p(x) and its percentile among test digits",
    openapi_extra=request_body(ScoreRequest, {}),
)
async def score(
    request: Request,
    model: ModelDep,
) -> Response:
    """An importance-weighted (IWAE) estimate of log p(x) for each image, in nats: the log of
    the mean of p(x|z)p(z)/q(z|x) over the model's reference number of samples z ~ q(z|x)
    (`log_weights`, each image alone), with the reference's seed: the same image always gets
    the same score, comparable with the test digits'; `percentile` says where it falls among
    them. Post image
    files (multipart, parts named `file`: made MNIST-like as in `/v1/encode`) or codes
    (JSON `latents`: each is decoded and the decoded digit is scored)."""
    servable, settings = model.servable, model.settings
    admission, uploads = model.admission, model.uploads
    accepted(request, (negotiation.JSON,))
    reference = servable.model.metadata.score_reference
    samples, seed = latent.score_settings(reference)
    answer = ScoreAnswer(samples, seed, reference)
    if is_multipart(request):
        files, _ = await read_files(request, NoFields, settings.max_batch)
        check_files(files, 1, settings.max_batch)
        check_score_work(len(files), samples, ["body", "file"], settings)
        async with admission.admit(len(files), "score"):
            batch = await load_images(uploads, files)
            weights = await log_weights(servable, batch, samples, seed)
    else:
        body = await read_json(request, ScoreRequest)
        rows = len(body.latents)
        check_rows(rows, ["body", "latents"], settings)
        check_score_work(rows, samples, ["body", "latents"], settings)
        codes = check_codes(body.latents, servable.model.latent_dim, ["body", "latents"])
        async with admission.admit(rows, "score"):
            decoded = await servable.run(Signature.DECODE, {"z": codes})
            weights = await log_weights(servable, decoded["images"], samples, seed)
    # A few numbers: encoded here rather than queued for the inference thread.
    return answer.encode({"log_weights": weights})


# --- the report pictures ------------------------------------------------------------------------


def report_folder(served: ServedDep, servable: Servable) -> Path:
    return served.base / str(servable.version) / REPORT_DIR


@router.get(
    "/v1/model/report",
    response_model=ReportPictures,
    tags=["model"],
    responses={**VERSION_NOT_SERVED, **OVERLOADED},
)
async def report_pictures(model: ModelDep, served: ServedDep) -> dict[str, Any]:
    """The pictures the evaluation drew for the served version (or `?version=`): random
    samples, reconstructions, the latent map, a traversal, per-digit samples, curves."""
    servable = model.servable
    folder = report_folder(served, servable)
    names = sorted(p.name for p in folder.glob("*.png") if re.match(PICTURE_NAME, p.name))
    return {"version": servable.version, "pictures": names}


@router.get(
    "/v1/model/report/{name}",
    tags=["model"],
    response_class=FileResponse,
    responses={
        200: {"content": {negotiation.PNG: {}}, "description": "The picture"},
        404: {"model": Problem, "description": "No such picture"},
        **OVERLOADED,
    },
)
async def report_picture(
    name: Annotated[str, PathParam(pattern=PICTURE_NAME, description="e.g. samples.png")],
    model: ModelDep,
    served: ServedDep,
) -> Response:
    """One picture of the served version's report, by the name `GET /v1/model/report`
    lists."""
    servable = model.servable
    path = report_folder(served, servable) / name
    if not path.is_file():
        raise HTTPException(
            404,
            detail=f"version {servable.version} has no report picture "
            f"{name!r}; GET /v1/model/report lists them",
        )
    return FileResponse(
        path, media_type=negotiation.PNG, headers={"X-Content-Type-Options": "nosniff"}
    )
