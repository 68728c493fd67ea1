"""The Open Inference Protocol (v2) with Triton's binary tensor data extension, so that
``tritonclient``, the KServe SDK and a KServe cluster use the model unchanged: server and
model metadata, health, model readiness and inference, one v2 model per signature
(``app.protocols.v2``). Inference goes through the same run stage as the rest of the API
(admission control, the version's batcher, the answer encoded on the inference thread); every
error, including picking a version, is answered ``{"error": ...}`` (``V2Route``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from app.api.answers import json_response
from app.api.deps import ModelContext, ServedDep, model_context
from app.api.errors import UNAVAILABLE_RETRY_AFTER, ErrorFormatRoute
from app.api.params import RawBody
from app.api.schemas import ErrorMessage
from app.config import Settings
from app.protocols import v2
from app.protocols.errors import ProtocolError
from app.serving.errors import Unavailable
from app.serving.lifecycle import ServedModel
from vae_contract import SERVING_DEFAULT, SIGNATURES, Signature, SignatureSpec

try:
    SERVER_VERSION = metadata.version("vae-digits")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    SERVER_VERSION = "unknown"


class V2Route(ErrorFormatRoute):
    """Errors answered ``{"error": ...}`` with the protocol's status codes."""

    def protocol_error(self, request: Request, error: Exception) -> ProtocolError | None:
        name = request.path_params.get("model_name", "")
        version = request.path_params.get("model_version")
        return v2.from_service_error(
            error, name, version, UNAVAILABLE_RETRY_AFTER
        ) or super().protocol_error(request, error)


router = APIRouter(tags=["Open Inference Protocol (v2)"], route_class=V2Route)
# The probes: open to anyone, as the service's own /healthz and /readyz are.
health_router = APIRouter(tags=["Open Inference Protocol (v2)"], route_class=V2Route)

V2_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "Bad input (the message says what)"},
    404: {"model": ErrorMessage, "description": "Unknown model or version"},
    503: {
        "model": ErrorMessage,
        "description": "No version loaded yet, or overloaded (with Retry-After)",
    },
}
NOT_READY: dict[int | str, dict[str, Any]] = {503: V2_ERRORS[503]}


@dataclass(frozen=True)
class V2Model:
    """The version picked, the v2 model asked for and the signature behind it."""

    context: ModelContext
    name: str
    signature: str

    @property
    def spec(self) -> SignatureSpec:
        return self.context.servable.model.signatures[self.signature]

    @property
    def version(self) -> int:
        return self.context.servable.version


def contract_models() -> dict[str, str]:
    """The v2 models any version may have (the contract's signatures)."""
    return v2.models([SERVING_DEFAULT, *SIGNATURES])


def served_models(served: ServedModel) -> dict[str, str]:
    """The v2 models of the newest served version (the contract's while none is loaded)."""
    if not served.ready:
        return contract_models()
    return v2.models(served.get().model.signatures)


def parse_version(text: str | None, model: str) -> int | None:
    """A version in a URL: a positive integer, else it names no version of ours (404)."""
    if text is None:
        return None
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise v2.V2Error(404, f"unknown version {text!r} of model {model!r}")
    return int(text)


async def use_model(request: Request) -> V2Model:
    """The version named in the path (or the newest) holding the signature behind the model
    named in the path. A name that is none of ours is a 404 before any version is looked up."""
    name = request.path_params["model_name"]
    signature = v2.signature_name(name)
    if signature is None:
        raise v2.unknown_model(name, contract_models())
    version = parse_version(request.path_params.get("model_version"), name)
    context = model_context(request, version)
    if signature not in context.servable.model.signatures:
        raise v2.V2Error(
            404,
            f"model {name!r} is not in version {context.servable.version}: its SavedModel "
            f"has no {signature} signature",
        )
    return V2Model(context, name, signature)


ModelDep = Annotated[V2Model, Depends(use_model)]


# --- server ---------------------------------------------------------------------------------------
@router.get("/v2", responses=V2_ERRORS)
@router.get("/v2/", include_in_schema=False)  # the protocol's OpenAPI file writes it so
async def server_metadata(served: ServedDep) -> Response:
    """Server metadata: name, version, the extensions (`binary_tensor_data`) and, beyond the
    protocol, `models`: each v2 model name and the SavedModel signature it serves."""
    return json_response(v2.server_metadata(SERVER_VERSION, served_models(served)))


@health_router.get("/v2/health/live")
async def server_live() -> Response:
    """Liveness: the server answers (whether or not a model is loaded)."""
    return json_response({"live": True})


@health_router.get("/v2/health/ready", responses=NOT_READY)
async def server_ready(served: ServedDep) -> Response:
    """Readiness: 200 once a model version is loaded and warm, 503 (saying why) until then."""
    if not served.ready:
        raise Unavailable(f"model not ready: {served.why_not_ready}")
    return json_response({"ready": True})


# --- models ---------------------------------------------------------------------------------------
def model_metadata(model: V2Model, served: ServedModel) -> Response:
    versions = [v for v in served.versions if model.signature in served.get(v).model.signatures]
    return json_response(v2.model_metadata(model.name, model.signature, versions, model.spec))


@router.get("/v2/models/{model_name}", responses=V2_ERRORS)
async def get_model_metadata(model_name: str, model: ModelDep, served: ServedDep) -> Response:
    """A model's inputs and outputs (datatypes, shapes, -1 for any size) as the newest served
    version's SavedModel signature has them, the versions that can be asked for, the platform."""
    return model_metadata(model, served)


@router.get("/v2/models/{model_name}/versions/{model_version}", responses=V2_ERRORS)
async def get_model_version_metadata(
    model_name: str, model_version: str, model: ModelDep, served: ServedDep
) -> Response:
    """One version's inputs and outputs."""
    return model_metadata(model, served)


def ready(model: V2Model) -> Response:
    return json_response({"name": model.name, "ready": True})


@router.get("/v2/models/{model_name}/ready", responses=V2_ERRORS)
async def model_ready(model_name: str, model: ModelDep) -> Response:
    """200 when the model (the newest served version) can answer; 404 for an unknown model,
    503 while no version is loaded."""
    return ready(model)


@router.get("/v2/models/{model_name}/versions/{model_version}/ready", responses=V2_ERRORS)
async def model_version_ready(model_name: str, model_version: str, model: ModelDep) -> Response:
    """200 when that version is served; 404 when it is not."""
    return ready(model)


# --- inference ------------------------------------------------------------------------------------
INFER_EXAMPLES = {
    "JSON tensors, vae (decode)": {
        "value": {
            "id": "42",
            "inputs": [{"name": "z", "shape": [1, 20], "datatype": "FP32", "data": [0.0] * 20}],
        },
    },
    "several inputs, vae-sample-batch, one output": {
        "value": {
            "inputs": [
                {"name": "seeds", "shape": [2], "datatype": "INT64", "data": [7, 7]},
                {"name": "indices", "shape": [2], "datatype": "INT64", "data": [0, 1]},
                {"name": "temperatures", "shape": [2], "datatype": "FP32", "data": [1.0, 1.0]},
                {"name": "digits", "shape": [2], "datatype": "INT32", "data": [-1, 3]},
            ],
            "outputs": [{"name": "latents"}],
        },
    },
}
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data_output": {"type": "boolean"}},
                        },
                        "inputs": {"type": "array", "items": {"type": "object"}},
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["inputs"],
                },
                "examples": INFER_EXAMPLES,
            },
            v2.BINARY_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": "The JSON inference request, then the binary data of the inputs "
                "with a binary_data_size parameter; Inference-Header-Content-Length gives "
                "the JSON's length",
            },
        },
    },
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, v2.BINARY_MEDIA_TYPE: {}},
        "description": "The inference response; outputs asked for in binary "
        "(`binary_data`, `binary_data_output`) follow its JSON as raw little-endian bytes, "
        "`Inference-Header-Content-Length` giving the JSON's length.",
    },
    **V2_ERRORS,
    413: {"model": ErrorMessage, "description": "The body, decompressed, is too large"},
    415: {"model": ErrorMessage, "description": "A Content-Encoding other than gzip or deflate"},
}


def work_rows(signature: str, inputs: dict[str, Any], settings: Settings) -> int:
    """The rows (images) a request asks of the model, within the service's bounds: at most
    VAE_MAX_BATCH examples; ``sample``'s count is its rows; ``log_weights`` costs a decoder pass
    per image and sample (VAE_MAX_SCORE_SAMPLES)."""
    rows = max((len(v) for v in inputs.values() if v.ndim > 0), default=1)
    if signature in (Signature.SAMPLE, Signature.SAMPLE_DIGIT):
        rows = int(inputs["count"])
        if rows < 1:
            raise v2.bad_request("count must be at least 1")
    if rows > settings.max_batch:
        raise v2.bad_request(f"at most {settings.max_batch} examples per request (VAE_MAX_BATCH)")
    if signature == Signature.LOG_WEIGHTS:
        samples = int(inputs["samples"])
        if samples < 1 or rows * samples > settings.max_score_samples:
            raise v2.bad_request(
                f"samples must be 1..{settings.max_score_samples // rows} for {rows} images "
                f"(VAE_MAX_SCORE_SAMPLES is {settings.max_score_samples})"
            )
    return rows


@router.post("/v2/models/{model_name}/infer", responses=INFER_RESPONSES, openapi_extra=INFER_BODY)
async def infer(model_name: str, request: Request, body: RawBody, model: ModelDep) -> Response:
    """Run the model's signature on the inputs (JSON tensors, nested or flat, or binary after
    the JSON header); answers the requested outputs (all by default) in JSON or binary."""
    return await run_infer(request, body, model)


@router.post(
    "/v2/models/{model_name}/versions/{model_version}/infer",
    responses=INFER_RESPONSES,
    openapi_extra=INFER_BODY,
)
async def infer_version(
    model_name: str, model_version: str, request: Request, body: RawBody, model: ModelDep
) -> Response:
    """Inference on one version."""
    return await run_infer(request, body, model)


# Content-Encoding of a request body (tritonclient's request_compression_algorithm) -> zlib's
# window bits: gzip, or deflate as HTTP means it (zlib's format).
COMPRESSED = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before compression, at most ``limit`` bytes (VAE_MAX_JSON_BYTES, as
    for an uncompressed body: a small compressed body can stand for gigabytes)."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    bits = COMPRESSED.get(encoding.strip().lower())
    if bits is None:
        raise v2.V2Error(415, f"Content-Encoding {encoding!r} is not supported: gzip, deflate")
    inflater = zlib.decompressobj(bits)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise v2.bad_request(f"the {encoding} body does not decompress: {error}") from None
    if len(plain) > limit:
        raise v2.V2Error(
            413, f"the body decompresses to more than {limit} bytes (VAE_MAX_JSON_BYTES)"
        )
    if not inflater.eof or inflater.unused_data:
        raise v2.bad_request(f"the {encoding} body is truncated or has data after its end")
    return plain


async def run_infer(request: Request, body: bytes, model: V2Model) -> Response:
    body = decompress(
        body,
        request.headers.get("content-encoding"),
        model.context.settings.max_json_bytes,
    )
    parsed = v2.parse_infer(
        body, request.headers.get(v2.HEADER_LENGTH), model.name, model.signature, model.spec
    )
    rows = work_rows(model.signature, parsed.inputs, model.context.settings)
    answer = v2.InferAnswer(model.name, str(model.version), parsed.id, parsed.outputs)
    async with model.context.admit(rows, "infer"):
        encoded: v2.Encoded = await model.context.run(
            v2.run_signature(model.signature), parsed.inputs, answer
        )
    headers = {"X-Model-Version": str(model.version)}
    if encoded.json_length is None:
        return Response(encoded.body, media_type="application/json", headers=headers)
    headers[v2.HEADER_LENGTH] = str(encoded.json_length)
    return Response(encoded.body, media_type=v2.BINARY_MEDIA_TYPE, headers=headers)


# --- anything else under /v2 ----------------------------------------------------------------------
class UnknownPathRoute(V2Route):
    """Matches a path under ``/v2/`` that no v2 route matches, not even with another method
    (that request stays a 405 naming the allowed methods)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and any(
            route is not self and route.matches(scope)[0] is Match.PARTIAL
            for route in (*health_router.routes, *router.routes)
        ):
            return Match.NONE, {}
        return match, child


async def unknown_path(request: Request) -> Response:
    """Another path under ``/v2/`` (another extension's, say): 404 ``{"error": ...}``, which
    v2 clients read."""
    raise v2.V2Error(404, f"not found: {request.method} {request.url.path} (not served here)")


router.add_api_route(
    "/v2/{path:path}",
    unknown_path,
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    route_class_override=UnknownPathRoute,
)
