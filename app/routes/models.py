"""The model as a resource: ``GET /v1/model`` (friendly), and TensorFlow Serving's REST API
(status, metadata, predict) with its routes, JSON and status codes, so a client written for
TensorFlow Serving works unchanged. Predict calls go through the same batcher and admission
control as the rest of the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response

from app.admission import Overloaded
from app.batching import InvalidInput
from app.deps import ModelDep, RuntimeDep, ServedDep
from app.lifecycle import Unavailable, VersionNotFound
from app.responses import json_response
from app.routes.common import OVERLOADED, VERSION_NOT_SERVED
from app.schemas import ModelInfo, TFServingError, VersionInfo
from app.tfserving import (
    PredictAnswer,
    metadata_json,
    not_found,
    parse_json,
    parse_predict,
    status_json,
)
from app.tfserving import TFServingError as ServingError
from vae_contract import MODEL_NAME

router = APIRouter()


class ModelNameConvertor(StringConvertor):
    """A model name in a URL, as TensorFlow Serving parses it (``[^/:]+``): without the colon,
    ``/v1/models/vae:predict`` is the predict route, not the status of a model "vae:predict"."""

    regex = "[^/:]+"


register_url_convertor("model", ModelNameConvertor())
ModelName = Annotated[
    str, Path(pattern=f"^{ModelNameConvertor.regex}$", description="The model's name: vae")
]

TF_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": TFServingError, "description": "Bad input (TensorFlow Serving's message)"},
    404: {"model": TFServingError, "description": "Unknown model or version"},
    503: {"model": TFServingError, "description": "No version loaded yet, or overloaded"},
}
PREDICT_EXAMPLES = {
    "row format (instances), decode": {
        "value": {"instances": [[0.0] * 20]},
    },
    "columnar format (inputs), sample_batch": {
        "value": {
            "signature_name": "sample_batch",
            "inputs": {
                "seeds": [7, 7],
                "indices": [0, 1],
                "temperatures": [1.0, 1.0],
                "digits": [-1, 3],
            },
        },
    },
}


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    tags=["model"],
    responses={**VERSION_NOT_SERVED, **OVERLOADED},
)
async def model_info(model: ModelDep, served: ServedDep) -> dict[str, Any]:
    """The served model (or `?version=`): its metadata.json (preset, hyperparameters, test
    figures, evaluation), latent size, device, signatures, every version's state, and the
    effective settings."""
    vae = model.servable.model
    return {
        **vae.metadata.model_dump(),
        "version": vae.version,
        "device": "GPU" if "GPU" in vae.device.upper() else "CPU",
        "device_name": vae.device,
        "signatures": sorted(vae.signatures),
        "versions": [VersionInfo(**vars(s)) for s in served.statuses()],
        "settings": model.settings.public(),
    }


# --- TensorFlow Serving's REST API -------------------------------------------------------------


@contextmanager
def tf_serving_errors(name: str, version: int | None) -> Iterator[None]:
    """The lifecycle's, admission control's and the model's errors as TensorFlow Serving words
    them: raised as ``TFServingError``, which the app answers ``{"error": ...}``."""
    try:
        yield
    except VersionNotFound:
        raise not_found(name, version) from None
    except Unavailable as unavailable:
        raise ServingError(503, unavailable.message) from None
    except Overloaded as overloaded:
        retry = {"Retry-After": str(overloaded.retry_after)}
        raise ServingError(503, overloaded.message, retry) from None
    except InvalidInput as refused:
        raise ServingError(400, refused.message) from None


def _check_name(name: str, version: int | None) -> None:
    if name != MODEL_NAME:
        raise not_found(name, version)


@router.get("/v1/models/{model_name:model}", tags=["TensorFlow Serving"], responses=TF_ERRORS)
async def model_status(model_name: ModelName, runtime: RuntimeDep) -> Response:
    """Every version's state (`START`, `LOADING`, `AVAILABLE`, `UNLOADING`, `END`) and, when
    one failed to load, why: TensorFlow Serving's GetModelStatus."""
    return _status(model_name, None, runtime)


@router.get(
    "/v1/models/{model_name:model}/versions/{version:int}",
    tags=["TensorFlow Serving"],
    responses=TF_ERRORS,
)
async def model_version_status(
    model_name: ModelName, version: int, runtime: RuntimeDep
) -> Response:
    """One version's state, as TensorFlow Serving's GetModelStatus."""
    return _status(model_name, version, runtime)


def _status(name: str, version: int | None, runtime: RuntimeDep) -> Response:
    try:
        if name != MODEL_NAME:
            raise VersionNotFound(f"Could not find any versions of model {name}")
        statuses = runtime.served.statuses(version)
    except VersionNotFound as missing:  # the lifecycle words it as TensorFlow Serving does
        raise ServingError(404, missing.message) from None
    return json_response(status_json(statuses))


@router.get(
    "/v1/models/{model_name:model}/metadata", tags=["TensorFlow Serving"], responses=TF_ERRORS
)
async def model_metadata(model_name: ModelName, runtime: RuntimeDep) -> Response:
    """The SavedModel's signature_def map, as TensorFlow Serving's GetModelMetadata prints
    it."""
    return _metadata(model_name, None, runtime)


@router.get(
    "/v1/models/{model_name:model}/versions/{version:int}/metadata",
    tags=["TensorFlow Serving"],
    responses=TF_ERRORS,
)
async def model_version_metadata(
    model_name: ModelName, version: int, runtime: RuntimeDep
) -> Response:
    """One version's signature_def map."""
    return _metadata(model_name, version, runtime)


def _metadata(name: str, version: int | None, runtime: RuntimeDep) -> Response:
    with tf_serving_errors(name, version):
        _check_name(name, version)
        servable = runtime.served.get(version)
    return json_response(metadata_json(servable.version, servable.model.signature_defs))


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "signature_name": {"type": "string", "default": "serving_default"},
                        "instances": {"description": "Row format: one item per example"},
                        "inputs": {"description": "Columnar format: one tensor per named input"},
                    },
                    # One of the two formats, not both (TensorFlow Serving's rule).
                    "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
                },
                "examples": PREDICT_EXAMPLES,
            }
        },
    },
}


@router.post(
    "/v1/models/{model_name:model}:predict",
    tags=["TensorFlow Serving"],
    responses=TF_ERRORS,
    openapi_extra=PREDICT_BODY,
)
async def predict(model_name: ModelName, request: Request, runtime: RuntimeDep) -> Response:
    """Run a signature (default `serving_default` = decode) on inputs in row (`instances`)
    or columnar (`inputs`) format; answers `predictions` or `outputs`, as TensorFlow
    Serving's Predict."""
    return await _predict(model_name, None, request, runtime)


@router.post(
    "/v1/models/{model_name:model}/versions/{version:int}:predict",
    tags=["TensorFlow Serving"],
    responses=TF_ERRORS,
    openapi_extra=PREDICT_BODY,
)
async def predict_version(
    model_name: ModelName, version: int, request: Request, runtime: RuntimeDep
) -> Response:
    """Predict on one version."""
    return await _predict(model_name, version, request, runtime)


async def _predict(
    name: str, version: int | None, request: Request, runtime: RuntimeDep
) -> Response:
    with tf_serving_errors(name, version):
        _check_name(name, version)
        document = parse_json(await request.body())
        with runtime.served.lease(version) as servable:
            parsed = parse_predict(document, servable.model.signatures)
            if parsed.rows > runtime.settings.max_batch:
                raise ServingError(
                    400,
                    f"at most {runtime.settings.max_batch} examples per request (VAE_MAX_BATCH)",
                )
            async with runtime.admission.admit(parsed.rows, "predict"):
                body = await servable.run(
                    parsed.signature_name, parsed.inputs, PredictAnswer(parsed.row_format)
                )
    headers = {"X-Model-Version": str(servable.version)}
    return Response(body, media_type="application/json", headers=headers)
