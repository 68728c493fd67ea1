"""TensorFlow Serving's REST API (status, metadata, predict) with its routes, JSON and status
codes, so a client written for TensorFlow Serving works unchanged. Predict goes through the
same run stage (batcher, admission control) as the rest of the API; every error, including
picking a version, is answered as TensorFlow Serving answers it (``TFServingRoute``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from app.api.answers import json_response
from app.api.deps import ModelContext, ServedDep, model_context
from app.api.errors import ErrorFormatRoute
from app.api.params import RawBody
from app.api.schemas import ErrorMessage
from app.protocols import tfserving
from app.protocols.errors import ProtocolError
from app.serving.errors import VersionNotFound
from vae_contract import MODEL_NAME


class ModelNameConvertor(StringConvertor):
    """A model name in a URL, as TensorFlow Serving parses it (``[^/:]+``): without the colon,
    ``/v1/models/vae:predict`` is the predict route, not the status of a model "vae:predict"."""

    regex = "[^/:]+"


register_url_convertor("model", ModelNameConvertor())
ModelName = Annotated[
    str, Path(pattern=f"^{ModelNameConvertor.regex}$", description="The model's name: vae")
]


class TFServingRoute(ErrorFormatRoute):
    """Errors worded as TensorFlow Serving words them (``app.protocols.tfserving``)."""

    def protocol_error(self, request: Request, error: Exception) -> ProtocolError | None:
        name = request.path_params.get("model_name", MODEL_NAME)
        version = request.path_params.get("version")
        return tfserving.from_service_error(error, name, version) or super().protocol_error(
            request, error
        )


router = APIRouter(tags=["TensorFlow Serving"], route_class=TFServingRoute)

TF_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "Bad input (TensorFlow Serving's message)"},
    404: {"model": ErrorMessage, "description": "Unknown model or version"},
    503: {"model": ErrorMessage, "description": "No version loaded yet, or overloaded"},
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


async def use_model(request: Request) -> ModelContext:
    """The version named in the path (or the newest) of the model named in the path; a name
    other than ours is a 404 before any version is looked up."""
    name, version = request.path_params["model_name"], request.path_params.get("version")
    if name != MODEL_NAME:
        raise tfserving.not_found(name, version)
    return model_context(request, version)


ModelDep = Annotated[ModelContext, Depends(use_model)]


@router.get("/v1/models/{model_name:model}", responses=TF_ERRORS)
async def model_status(model_name: ModelName, served: ServedDep) -> Response:
    """Every version's state (`START`, `LOADING`, `AVAILABLE`, `UNLOADING`, `END`) and, when
    one failed to load, why: TensorFlow Serving's GetModelStatus."""
    return status(model_name, None, served)


@router.get("/v1/models/{model_name:model}/versions/{version:int}", responses=TF_ERRORS)
async def model_version_status(model_name: ModelName, version: int, served: ServedDep) -> Response:
    """One version's state, as TensorFlow Serving's GetModelStatus."""
    return status(model_name, version, served)


def status(name: str, version: int | None, served: ServedDep) -> Response:
    try:
        if name != MODEL_NAME:
            raise VersionNotFound(f"Could not find any versions of model {name}")
        statuses = served.statuses(version)
    except VersionNotFound as missing:  # the lifecycle words it as TensorFlow Serving does
        raise tfserving.TFServingError(404, missing.message) from None
    return json_response(tfserving.status_json(statuses))


@router.get("/v1/models/{model_name:model}/metadata", responses=TF_ERRORS)
async def model_metadata(model_name: ModelName, model: ModelDep) -> Response:
    """The SavedModel's signature_def map, as TensorFlow Serving's GetModelMetadata prints
    it."""
    return metadata(model)


@router.get("/v1/models/{model_name:model}/versions/{version:int}/metadata", responses=TF_ERRORS)
async def model_version_metadata(model_name: ModelName, version: int, model: ModelDep) -> Response:
    """One version's signature_def map."""
    return metadata(model)


def metadata(model: ModelContext) -> Response:
    servable = model.servable
    return json_response(tfserving.metadata_json(servable.version, servable.model.signature_defs))


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
    "/v1/models/{model_name:model}:predict", responses=TF_ERRORS, openapi_extra=PREDICT_BODY
)
async def predict(model_name: ModelName, body: RawBody, model: ModelDep) -> Response:
    """Run a signature (default `serving_default` = decode) on inputs in row (`instances`)
    or columnar (`inputs`) format; answers `predictions` or `outputs`, as TensorFlow
    Serving's Predict."""
    return await run_predict(body, model)


@router.post(
    "/v1/models/{model_name:model}/versions/{version:int}:predict",
    responses=TF_ERRORS,
    openapi_extra=PREDICT_BODY,
)
async def predict_version(
    model_name: ModelName, version: int, body: RawBody, model: ModelDep
) -> Response:
    """Predict on one version."""
    return await run_predict(body, model)


async def run_predict(body: bytes, model: ModelContext) -> Response:
    document = tfserving.parse_json(body)
    parsed = tfserving.parse_predict(document, model.servable.model.signatures)
    if parsed.rows > model.settings.max_batch:
        raise tfserving.bad_request(
            f"at most {model.settings.max_batch} examples per request (VAE_MAX_BATCH)"
        )
    answer = tfserving.PredictAnswer(parsed.row_format)
    async with model.admit(parsed.rows, "predict"):
        answer_body = await model.run(parsed.signature_name, parsed.inputs, answer)
    headers = {"X-Model-Version": str(model.servable.version)}
    return Response(answer_body, media_type="application/json", headers=headers)


class MalformedRequestRoute(TFServingRoute):
    """Matches a path under ``/v1/models/`` that no route of this router matches, not even
    with another method (that request stays a 405 naming the allowed methods)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and any(
            route is not self and route.matches(scope)[0] is Match.PARTIAL
            for route in router.routes
        ):
            return Match.NONE, {}
        return match, child


async def malformed(request: Request) -> Response:
    """Any other request under ``/v1/models/``, answered as TensorFlow Serving answers it."""
    raise tfserving.TFServingError(404, f"Malformed request: {request.method} {request.url.path}")


router.add_api_route(
    "/v1/models/{path:path}",
    malformed,
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    route_class_override=MalformedRequestRoute,
)
