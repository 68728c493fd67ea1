"""The Open Inference Protocol ("v2": KServe's, Triton's, MLServer's REST API) with Triton's
binary tensor data extension, as ``kserve/open-inference-protocol``'s ``inference_rest.md``
and Triton's ``extension_binary_data.md`` define them: model names for the SavedModel's
signatures, server and model metadata, inference requests (JSON tensors, or raw little-endian
bytes after the JSON header) turned into arrays for a signature, outputs turned back into an
inference response, and the service's errors worded for v2. Pure functions: the routes in
``app.api.routes.v2`` do the HTTP.

One v2 model per signature (v2 has one set of inputs and outputs per model): ``vae`` is
``serving_default`` (decode), every other signature is ``vae-`` and its name with hyphens
(``vae-encode``, ``vae-sample-batch``, ``vae-log-weights``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from app.protocols.errors import ProtocolError
from app.serving.errors import InvalidInput, Overloaded, Unavailable, VersionNotFound
from vae_contract import MODEL_NAME, SERVING_DEFAULT, SIGNATURES, Signature, SignatureSpec

PLATFORM = "tensorflow_savedmodel"
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_MEDIA_TYPE = "application/octet-stream"
# v2 datatypes and their NumPy types, little-endian (the binary extension's byte order).
# BYTES (length-prefixed strings) and BF16 have no NumPy type here: no signature takes them.
DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in (
        ("BOOL", "?"),
        ("UINT8", "<u1"),
        ("UINT16", "<u2"),
        ("UINT32", "<u4"),
        ("UINT64", "<u8"),
        ("INT8", "<i1"),
        ("INT16", "<i2"),
        ("INT32", "<i4"),
        ("INT64", "<i8"),
        ("FP16", "<f2"),
        ("FP32", "<f4"),
        ("FP64", "<f8"),
    )
}
KNOWN_DATATYPES = (*DATATYPES, "BYTES", "BF16")
_BY_TYPE = {(dtype.kind, dtype.itemsize): name for name, dtype in DATATYPES.items()}
# Encoded off the inference thread beyond this many rows of JSON numbers, as the service's
# JSON images are: 256 images (200,704 numbers) took orjson 15 ms on a busy 2-core machine,
# time that the small requests queued behind would wait.
HEAVY_JSON_ROWS = 64
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs", "model_name"})
INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
OUTPUT_KEYS = frozenset({"name", "parameters"})


class V2Error(ProtocolError):
    """An error answered ``{"error": message}`` with the protocol's HTTP status."""


def bad_request(message: str) -> V2Error:
    return V2Error(400, message)


def datatype(dtype: np.dtype) -> str:
    """The v2 datatype of a NumPy dtype."""
    name = _BY_TYPE.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise ValueError(f"no v2 datatype for {dtype}")
    return name


# --- model names --------------------------------------------------------------------------------
def model_name(signature: str) -> str:
    """The v2 model that serves ``signature``: ``vae`` for serving_default, else
    ``vae-<signature with hyphens>``."""
    if signature == SERVING_DEFAULT:
        return MODEL_NAME
    return f"{MODEL_NAME}-{signature.replace('_', '-')}"


def signature_name(model: str) -> str | None:
    """The signature a v2 model name stands for (whether a version has it or not); None for a
    name that is none of ours."""
    if model == MODEL_NAME:
        return SERVING_DEFAULT
    prefix = f"{MODEL_NAME}-"
    if not model.startswith(prefix) or "_" in model:
        return None
    signature = model.removeprefix(prefix).replace("-", "_")
    return None if signature == SERVING_DEFAULT or not signature else signature


def run_signature(signature: str) -> str:
    """The signature to call for ``signature``: the export's serving_default is its first
    endpoint, ``decode``, one and the same function (the contract checks it at load), so it runs
    as ``decode`` and the batcher merges its requests with every other decode request."""
    return Signature.DECODE if signature == SERVING_DEFAULT else signature


def models(signatures: Iterable[str]) -> dict[str, str]:
    """v2 model name -> signature, for the signatures a version has: ``vae`` first, then the
    contract's order, then any other signature by name."""
    present = set(signatures)
    order = [SERVING_DEFAULT, *SIGNATURES, *sorted(present)]
    return {model_name(s): s for s in dict.fromkeys(order) if s in present}


# --- metadata -----------------------------------------------------------------------------------
def _tensor_metadata(name: str, dtype: np.dtype, shape: tuple[int | None, ...]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype(dtype),
        "shape": [-1 if d is None else d for d in shape],
    }


def _ordered(names: Iterable[str], contract_order: Iterable[str]) -> list[str]:
    present = list(names)
    return [n for n in dict.fromkeys([*contract_order, *sorted(present)]) if n in present]


def input_names(signature: str, spec: SignatureSpec) -> list[str]:
    """Inputs in the contract's order (then any other by name)."""
    contract = SIGNATURES.get(run_signature(signature))
    return _ordered(spec.inputs, [t.name for t in contract.inputs] if contract else [])


def output_names(signature: str, spec: SignatureSpec) -> list[str]:
    """Outputs in the contract's order (then any other by name)."""
    contract = SIGNATURES.get(run_signature(signature))
    return _ordered(spec.outputs, [t.name for t in contract.outputs] if contract else [])


def server_metadata(version: str, served: Mapping[str, str]) -> dict[str, Any]:
    """``$metadata_server_response``, with the v2 model names and their signatures."""
    return {
        "name": "vae-digits",
        "version": version,
        "extensions": list(EXTENSIONS),
        "models": [{"name": name, "signature": sig} for name, sig in served.items()],
    }


def model_metadata(
    name: str, signature: str, versions: Iterable[int], spec: SignatureSpec
) -> dict[str, Any]:
    """``$metadata_model_response``: the signature's inputs and outputs, -1 for any size."""
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [
            _tensor_metadata(n, spec.inputs[n].dtype, spec.inputs[n].shape)
            for n in input_names(signature, spec)
        ],
        "outputs": [
            _tensor_metadata(n, spec.outputs[n].dtype, spec.outputs[n].shape)
            for n in output_names(signature, spec)
        ],
    }


# --- inference requests -------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """A parsed inference request: its id, one array per input, the outputs to answer."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...]

    @property
    def rows(self) -> int:
        """Examples in the request: the batch dimension (1 for scalar inputs alone)."""
        return max((len(v) for v in self.inputs.values() if v.ndim > 0), default=1)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(head: bytes, hint: str = "") -> dict[str, Any]:
    """The JSON inference header: an object. Strict JSON: NaN and Infinity are refused."""
    if not head.strip():
        raise bad_request("the request has no JSON inference header (the body is empty)")
    try:
        document = json.loads(head, parse_constant=_reject_constant)
    except RecursionError:
        raise bad_request("the JSON is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, long integers
        raise bad_request(f"the JSON inference header does not parse: {error}{hint}") from None
    if not isinstance(document, dict):
        raise bad_request("the JSON inference header must be an object")
    return document


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tensor data after it (``Inference-Header-Content-Length``
    says where the JSON ends; without it the whole body is JSON)."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isdigit() or not text.isascii():
        raise bad_request(f"{HEADER_LENGTH} must be a number of bytes, not {header_length!r}")
    length = int(text)
    if length > len(body):
        raise bad_request(
            f"{HEADER_LENGTH} is {length} bytes, but the body has only {len(body)} bytes"
        )
    return body[:length], body[length:]


def parse_infer(
    body: bytes, header_length: str | None, model: str, signature: str, spec: SignatureSpec
) -> InferRequest:
    """An inference request for ``spec`` (the signature behind ``model``), in JSON or with
    binary tensor data, or a 400 saying what is wrong with it."""
    head, tail = split_body(body, header_length)
    if header_length is not None and not head:
        return _raw_binary(tail, model, signature, spec)
    hint = (
        f" (binary tensor data after the JSON needs the {HEADER_LENGTH} header)"
        if header_length is None
        else ""
    )
    document = parse_json(head, hint)
    unknown = sorted(set(document) - REQUEST_KEYS)
    if unknown:
        raise bad_request(f"unknown field(s) in the inference request: {', '.join(unknown)}")
    request_id = document.get("id")
    if "id" in document and not isinstance(request_id, str):
        raise bad_request("'id' must be a string")
    if "model_name" in document and document["model_name"] != model:
        raise bad_request(f"the request names model {document['model_name']!r}, the URL {model!r}")
    parameters = _parameters(
        document.get("parameters", {}), {"binary_data_output": bool}, "request"
    )
    inputs = _inputs(document.get("inputs"), tail, model, signature, spec)
    outputs = _outputs(
        document.get("outputs", []),
        bool(parameters.get("binary_data_output", False)),
        model,
        signature,
        spec,
    )
    return InferRequest(request_id, inputs, outputs)


def _parameters(value: Any, allowed: dict[str, type], where: str) -> dict[str, Any]:
    """A ``$parameters`` object holding only the parameters this server implements."""
    if not isinstance(value, dict):
        raise bad_request(f"the parameters of the {where} must be an object")
    for name, item in value.items():
        kind = allowed.get(name)
        if kind is None:
            supported = ", ".join(allowed) or "none"
            raise bad_request(
                f"unknown parameter {name!r} of the {where} (supported here: {supported})"
            )
        if type(item) is not kind:  # bool is an int in Python: exact types
            wanted = "true or false" if kind is bool else "an integer"
            raise bad_request(f"parameter {name!r} of the {where} must be {wanted}")
    return value


def _shape_text(shape: Iterable[int | None]) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def _inputs(
    value: Any, tail: bytes, model: str, signature: str, spec: SignatureSpec
) -> dict[str, np.ndarray]:
    if not isinstance(value, list) or not value:
        raise bad_request("'inputs' must be a non-empty list of input tensors")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"input {index} must be an object")
        unknown = sorted(set(item) - INPUT_KEYS)
        if unknown:
            raise bad_request(f"unknown field(s) in input {index}: {', '.join(unknown)}")
        name = item.get("name")
        if not isinstance(name, str):
            raise bad_request(f"input {index} has no 'name' string")
        tensor = spec.inputs.get(name)
        if tensor is None:
            wanted = ", ".join(input_names(signature, spec))
            raise bad_request(f"unknown input {name!r} for model {model!r} (it takes {wanted})")
        if name in arrays:
            raise bad_request(f"input {name!r} is given twice")
        expected = datatype(tensor.dtype)
        given = item.get("datatype")
        if given not in KNOWN_DATATYPES:
            raise bad_request(f"input {name!r}: unknown datatype {given!r}")
        if given != expected:
            raise bad_request(
                f"input {name!r} has datatype {given}, model {model!r} takes {expected}"
            )
        shape = _shape(item.get("shape"), name, tensor.shape, model)
        count = math.prod(shape)
        parameters = _parameters(
            item.get("parameters", {}), {"binary_data_size": int}, f"input {name!r}"
        )
        size = parameters.get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise bad_request(
                    f"input {name!r} has both 'data' and binary_data_size: send it one way"
                )
            array, offset = _from_binary(tail, offset, size, count, shape, name, tensor.dtype)
        elif "data" in item:
            array = _from_json(item["data"], count, shape, name, tensor.dtype, given)
        else:
            raise bad_request(f"input {name!r} has no 'data' and no binary_data_size parameter")
        if tensor.dtype.kind == "f" and not np.isfinite(array).all():
            raise bad_request(f"input {name!r} holds NaN or infinite values")
        arrays[name] = array.reshape(shape if tensor.shape else ())
    if offset != len(tail):
        raise bad_request(
            f"the body has {len(tail) - offset} bytes after the JSON header and the inputs' "
            "binary data (binary_data_size and Inference-Header-Content-Length disagree)"
            if offset
            else f"the body has {len(tail)} bytes after the JSON header, but no input has a "
            "binary_data_size parameter"
        )
    missing = [n for n in input_names(signature, spec) if n not in arrays]
    if missing:
        raise bad_request(f"model {model!r} needs input(s) {', '.join(missing)}")
    _same_rows(arrays, model)
    return arrays


def _shape(value: Any, name: str, wanted: tuple[int | None, ...], model: str) -> list[int]:
    """The input's shape, checked against the signature's (a scalar input takes [] or [1])."""
    if not isinstance(value, list) or any(type(d) is not int or d < 0 for d in value):
        raise bad_request(f"input {name!r}: 'shape' must be a list of non-negative integers")
    scalar_as_one = not wanted and value == [1]
    fits = scalar_as_one or (
        len(value) == len(wanted)
        and all(w is None or d == w for d, w in zip(value, wanted, strict=True))
    )
    if not fits:
        accepted = "[] (or [1])" if not wanted else _shape_text(wanted)
        raise bad_request(
            f"input {name!r} has shape {_shape_text(value)}, model {model!r} takes {accepted}"
        )
    if wanted and value[0] == 0:
        raise bad_request(f"input {name!r} is empty (shape {_shape_text(value)})")
    return value


def _from_binary(
    tail: bytes,
    offset: int,
    size: int,
    count: int,
    shape: list[int],
    name: str,
    dtype: np.dtype,
) -> tuple[np.ndarray, int]:
    little = dtype.newbyteorder("<")
    expected = count * little.itemsize
    if size != expected:
        raise bad_request(
            f"input {name!r}: binary_data_size is {size} bytes, shape {_shape_text(shape)} of "
            f"{datatype(dtype)} takes {expected}"
        )
    if offset + size > len(tail):
        raise bad_request(
            f"input {name!r}: the body ends {offset + size - len(tail)} bytes before its binary "
            "data does (binary_data_size and Inference-Header-Content-Length disagree)"
        )
    array = np.frombuffer(tail, little, count, offset).reshape(shape)
    return array.astype(dtype, copy=False), offset + size


def _flatten(data: list[Any], depth: int) -> list[Any]:
    """Row-major values of nested lists (at most ``depth`` levels, each level all lists or
    all values): the protocol takes a tensor nested or flat."""
    flat = data
    for _ in range(depth):
        lists = [type(v) is list for v in flat]
        if not any(lists):
            return flat
        if not all(lists):
            break
        flat = [v for row in flat for v in row]
    if any(type(v) is list for v in flat):
        raise bad_request("nested more deeply than its shape, or lists mixed with numbers")
    return flat


def _from_json(
    data: Any, count: int, shape: list[int], name: str, dtype: np.dtype, given: str
) -> np.ndarray:
    if not isinstance(data, list):
        raise bad_request(f"input {name!r}: 'data' must be a JSON array")
    try:
        flat = _flatten(data, max(len(shape), 1))
    except V2Error as error:
        raise bad_request(f"input {name!r}: 'data' is {error.message}") from None
    if len(flat) != count:
        raise bad_request(
            f"input {name!r} has {len(flat)} values, shape {_shape_text(shape)} holds {count}"
        )
    kinds = set(map(type, flat))
    allowed = {int, float} if dtype.kind == "f" else {int}
    if not kinds <= allowed:
        found = ", ".join(sorted(_json_kind(k) for k in kinds - allowed))
        wanted = "numbers" if dtype.kind == "f" else "integers"
        raise bad_request(f"input {name!r}: {given} data must be {wanted}, not {found}")
    try:
        with np.errstate(over="ignore"):
            return np.array(flat, dtype)
    except OverflowError:
        raise bad_request(f"input {name!r}: a value does not fit in {given}") from None


def _json_kind(kind: type) -> str:
    return {bool: "true/false", str: "strings", float: "fractions", dict: "objects"}.get(
        kind, "null" if kind is type(None) else kind.__name__
    )


def _same_rows(arrays: dict[str, np.ndarray], model: str) -> None:
    rows = {name: len(a) for name, a in arrays.items() if a.ndim > 0}
    if len(set(rows.values())) > 1:
        listed = ", ".join(f"{n} {r}" for n, r in rows.items())
        raise bad_request(f"model {model!r} takes one row per example in every input: {listed}")


def _raw_binary(tail: bytes, model: str, signature: str, spec: SignatureSpec) -> InferRequest:
    """Triton's raw binary request (``Inference-Header-Content-Length: 0``): the body is the
    one input's bytes, its shape deduced from their count; every output answered in binary."""
    if len(spec.inputs) != 1:
        raise bad_request(
            f"a raw binary request ({HEADER_LENGTH}: 0) is for models with one input; "
            f"{model!r} takes {len(spec.inputs)}"
        )
    ((name, tensor),) = spec.inputs.items()
    itemsize = tensor.dtype.itemsize
    known = math.prod(d for d in tensor.shape if d is not None)
    variable = [i for i, d in enumerate(tensor.shape) if d is None]
    if len(variable) > 1 or len(tail) % (itemsize * known) or not tail:
        raise bad_request(
            f"a raw binary request's {len(tail)} bytes are not a whole {datatype(tensor.dtype)} "
            f"tensor of shape {_shape_text(tensor.shape)} for model {model!r}"
        )
    shape = [len(tail) // (itemsize * known) if d is None else d for d in tensor.shape]
    array, _ = _from_binary(tail, 0, len(tail), math.prod(shape), shape, name, tensor.dtype)
    if tensor.dtype.kind == "f" and not np.isfinite(array).all():
        raise bad_request(f"input {name!r} holds NaN or infinite values")
    outputs = tuple(RequestedOutput(n, True) for n in output_names(signature, spec))
    return InferRequest(None, {name: array}, outputs)


def _outputs(
    value: Any, binary_default: bool, model: str, signature: str, spec: SignatureSpec
) -> tuple[RequestedOutput, ...]:
    """The outputs to answer: those named (each in binary if its ``binary_data`` says so, else
    as ``binary_data_output`` says), or all of them."""
    if value == []:  # none named: all of them
        return tuple(RequestedOutput(n, binary_default) for n in output_names(signature, spec))
    if not isinstance(value, list):
        raise bad_request("'outputs' must be a list of requested outputs")
    requested: dict[str, RequestedOutput] = {}
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"requested output {index} must be an object")
        unknown = sorted(set(item) - OUTPUT_KEYS)
        if unknown:
            raise bad_request(f"unknown field(s) in requested output {index}: {', '.join(unknown)}")
        name = item.get("name")
        if not isinstance(name, str):
            raise bad_request(f"requested output {index} has no 'name' string")
        if name not in spec.outputs:
            wanted = ", ".join(output_names(signature, spec))
            raise bad_request(f"unknown output {name!r} for model {model!r} (it has {wanted})")
        if name in requested:
            raise bad_request(f"output {name!r} is requested twice")
        parameters = _parameters(
            item.get("parameters", {}), {"binary_data": bool}, f"output {name!r}"
        )
        requested[name] = RequestedOutput(name, parameters.get("binary_data", binary_default))
    return tuple(requested.values())


# --- inference responses ------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoded:
    """An inference response's body; ``json_length`` is the JSON header's length when binary
    tensor data follows it (None: the body is all JSON)."""

    body: bytes
    json_length: int | None


@dataclass(frozen=True)
class InferAnswer:
    """The inference response (``$inference_response``), encoded on the inference thread:
    the requested outputs as JSON numbers (flat, row-major) or as raw bytes after the JSON."""

    model_name: str
    model_version: str
    request_id: str | None
    outputs: tuple[RequestedOutput, ...]

    def heavy(self, rows: int) -> bool:
        return rows > HEAVY_JSON_ROWS and not all(o.binary for o in self.outputs)

    def encode(self, outputs: dict[str, np.ndarray]) -> Encoded:
        entries: list[bytes] = []
        blobs: list[bytes] = []
        for wanted in self.outputs:
            array = outputs[wanted.name]
            entry: dict[str, Any] = {
                "name": wanted.name,
                "datatype": datatype(array.dtype),
                "shape": list(array.shape),
            }
            if wanted.binary:
                blob = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
                entries.append(dumps(entry))
            else:  # the entry's JSON with its data appended: {..., "data": [...]}
                entries.append(dumps(entry)[:-1] + b',"data":' + json_numbers(array) + b"}")
        document: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
        }
        if self.request_id is not None:
            document["id"] = self.request_id
        head = dumps(document)[:-1] + b',"outputs":[' + b",".join(entries) + b"]}"
        if not blobs:
            return Encoded(head, None)
        return Encoded(b"".join([head, *blobs]), len(head))


def dumps(content: Any) -> bytes:
    """Compact JSON."""
    return json.dumps(content, separators=(",", ":")).encode()


def json_numbers(array: np.ndarray) -> bytes:
    """A tensor's values as a flat JSON array, row-major, written by orjson from the array
    itself: a float32 as the shortest text that reads back to the same float32 (9 digits or
    fewer rather than its float64's 17: half the bytes), 40 times faster than ``json.dumps``
    of ``tolist()``. A non-finite value (none for finite inputs) is written as NaN or Infinity,
    which Python's and RapidJSON's parsers read, rather than failing the request."""
    flat = np.ascontiguousarray(array.ravel())
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        return json.dumps(flat.tolist(), separators=(",", ":"), allow_nan=True).encode()
    return orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY)


# --- errors -------------------------------------------------------------------------------------
def unknown_model(model: str, served: Iterable[str]) -> V2Error:
    return V2Error(404, f"unknown model {model!r}; models: {', '.join(served)}")


def from_service_error(
    error: Exception, model: str, version: str | None, retry_after: str
) -> V2Error | None:
    """The service's error as a v2 answer; None for any other exception. ``retry_after`` is
    the wait suggested while no version is loaded."""
    if isinstance(error, V2Error):
        return error
    if isinstance(error, VersionNotFound):
        return V2Error(404, f"unknown version {version} of model {model!r}: {error.message}")
    if isinstance(error, Overloaded):
        return V2Error(503, error.message, {"Retry-After": str(error.retry_after)})
    if isinstance(error, Unavailable):
        return V2Error(503, error.message, {"Retry-After": retry_after})
    if isinstance(error, InvalidInput):
        return bad_request(error.message)
    return None
