"""TensorFlow Serving's REST formats: predict requests in row ("instances") or columnar
("inputs") format turned into arrays for a signature, and outputs turned back into
"predictions" or "outputs", as ``tensorflow_serving/g3doc/api_rest.md`` and its JSON tensor
code define them, and the service's errors worded as TensorFlow Serving words them. Pure
functions: the routes in ``app.api.routes.tfserving`` do the HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.protocols.errors import ProtocolError
from app.serving.errors import InvalidInput, Overloaded, OverShare, Unavailable, VersionNotFound
from app.serving.versions import VersionStatus
from vae_contract import MODEL_NAME, SERVING_DEFAULT, SignatureSpec, TensorSpec


class TFServingError(ProtocolError):
    """An error answered ``{"error": message}`` with TensorFlow Serving's HTTP status."""


def bad_request(message: str) -> TFServingError:
    return TFServingError(400, message)


@dataclass(frozen=True)
class PredictRequest:
    signature_name: str
    inputs: dict[str, np.ndarray]
    row_format: bool

    @property
    def rows(self) -> int:
        """Examples in the request: the batch dimension (1 for scalar inputs)."""
        return max((len(v) for v in self.inputs.values() if v.ndim > 0), default=1)


def parse_json(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; NaN and Infinity are allowed, as TF Serving does."""
    if not body:
        raise bad_request("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise bad_request(f"JSON Parse error: {error}") from None
    if not isinstance(document, dict):
        raise bad_request("JSON Value: is not an object")
    return document


def parse_predict(document: dict[str, Any], signatures: dict[str, SignatureSpec]) -> PredictRequest:
    """A predict request for one of ``signatures`` (by name)."""
    name = document.get("signature_name", SERVING_DEFAULT)
    if not isinstance(name, str):
        raise bad_request("'signature_name' key must be a string value")
    name = name or SERVING_DEFAULT
    spec = signatures.get(name)
    if spec is None:
        raise bad_request(f'Serving signature name: "{name}" not found in signature def')
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise bad_request(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if has_instances:
        values = _from_instances(document["instances"], spec.inputs)
    elif has_inputs:
        values = _from_inputs(document["inputs"], spec.inputs)
    else:
        raise bad_request("Missing 'inputs' or 'instances' key")
    try:
        arrays = {
            input_name: _tensor(value, spec.inputs[input_name], input_name)
            for input_name, value in values.items()
        }
    except RecursionError:
        raise bad_request("inputs are nested too deeply") from None
    return PredictRequest(name, arrays, has_instances)


def _from_instances(instances: Any, inputs: dict[str, TensorSpec]) -> dict[str, list[Any]]:
    if not isinstance(instances, list):
        raise bad_request("Expecting 'instances' to be an list/array")
    if not instances:
        raise bad_request("No values in 'instances' array")
    names = sorted(inputs)
    if not isinstance(instances[0], dict):
        if len(names) > 1:
            raise bad_request(
                "instances is a plain list, but expecting list of objects as "
                f"multiple input tensors required as per tensorinfo_map: {names}"
            )
        if any(isinstance(item, dict) for item in instances):
            raise bad_request("Expecting value/list but got object in 'instances'")
        return {names[0]: instances}
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, item in enumerate(instances):
        if not isinstance(item, dict):
            raise bad_request(f"Expecting object but got list at item {index} of input list")
        if sorted(item) != names:
            raise bad_request(
                f"Failed to process element: {index} of 'instances' list. "
                f"JSON object keys must be equal to: {','.join(names)}"
            )
        for name in names:
            columns[name].append(item[name])
    return columns


def _from_inputs(value: Any, inputs: dict[str, TensorSpec]) -> dict[str, Any]:
    names = sorted(inputs)
    if not isinstance(value, dict):
        if len(names) > 1:
            raise bad_request(
                "inputs is a plain value/list, but expecting an object as "
                f"multiple input tensors required as per tensorinfo_map: {names}"
            )
        return {names[0]: value}
    missing = [name for name in names if name not in value]
    if missing:
        raise bad_request(f"Missing named input: {missing[0]} in 'inputs' object.")
    return {name: value[name] for name in names}


def _contains_bool_or_str(value: Any) -> bool:
    if isinstance(value, list):
        return any(_contains_bool_or_str(item) for item in value)
    return isinstance(value, bool | str) or value is None or isinstance(value, dict)


def _tensor(value: Any, spec: TensorSpec, name: str) -> np.ndarray:
    """``value`` as an array of the input's dtype and shape, or a 400 saying what is wrong."""
    expected = spec.dtype
    if _contains_bool_or_str(value):
        raise bad_request(f"JSON Value for input {name} is not of expected type: {expected}")
    try:
        array = np.array(value)
    except ValueError:
        raise bad_request(f"input {name}: the nested lists are ragged, not a tensor") from None
    if array.dtype.kind not in "iuf" or (expected.kind in "iu" and array.dtype.kind == "f"):
        raise bad_request(f"JSON Value for input {name} is not of expected type: {expected}")
    if (
        expected.kind in "iu"
        and array.size
        and (array.min() < np.iinfo(expected).min or array.max() > np.iinfo(expected).max)
    ):
        raise bad_request(f"input {name}: a value does not fit in {expected}")
    shape = spec.shape
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        wanted = "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"
        raise bad_request(
            f"input {name} has shape {list(array.shape)}, the signature takes {wanted}"
        )
    if array.ndim and array.shape[0] == 0:
        raise bad_request(f"input {name} is empty")
    return array.astype(expected, copy=False)


@dataclass(frozen=True)
class PredictAnswer:
    """The predict response body: ``predictions`` (row format) or ``outputs`` (columnar); one
    output is unwrapped, several are objects keyed by output name."""

    row_format: bool

    def heavy(self, rows: int) -> bool:
        return False

    def encode(self, outputs: dict[str, np.ndarray]) -> bytes:
        values = {name: value.tolist() for name, value in sorted(outputs.items())}
        if not self.row_format:
            content: Any = next(iter(values.values())) if len(values) == 1 else values
            return dumps({"outputs": content})
        sizes = {len(v) for v in outputs.values() if np.ndim(v) > 0}
        if len(sizes) != 1 or any(np.ndim(v) == 0 for v in outputs.values()):
            raise bad_request(
                "outputs have no common batch size: use the columnar "
                "'inputs' format for this signature"
            )
        if len(values) == 1:
            return dumps({"predictions": next(iter(values.values()))})
        rows = [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]
        return dumps({"predictions": rows})


def dumps(content: Any) -> bytes:
    """JSON as TF Serving writes it: NaN and Infinity as bare tokens."""
    return json.dumps(content, separators=(",", ":"), allow_nan=True).encode()


def status_json(statuses: list[VersionStatus]) -> dict[str, Any]:
    """``GetModelStatusResponse`` as TF Serving prints it."""
    return {
        "model_version_status": [
            {
                "version": str(status.version),
                "state": str(status.state),
                "status": {"error_code": status.error_code, "error_message": status.error_message},
            }
            for status in statuses
        ]
    }


def metadata_json(version: int, signature_defs: dict[str, Any]) -> dict[str, Any]:
    """``GetModelMetadataResponse`` as TF Serving prints it (its signature_def map read from
    the SavedModel's own protobuf)."""
    return {
        "model_spec": {"name": MODEL_NAME, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": signature_defs}},
    }


def not_found(name: str, version: int | None) -> TFServingError:
    return TFServingError(404, f"Servable not found for request: {servable_spec(name, version)}")


def servable_spec(name: str, version: int | None) -> str:
    """How TensorFlow Serving names the servable a request asked for."""
    return f"Latest({name})" if version is None else f"Specific({name}, {version})"


def from_service_error(error: Exception, name: str, version: int | None) -> TFServingError | None:
    """The service's error as TensorFlow Serving answers it; None for any other exception."""
    if isinstance(error, TFServingError):
        return error
    if isinstance(error, VersionNotFound):
        return not_found(name, version)
    if isinstance(error, Overloaded):
        return TFServingError(503, error.message, {"Retry-After": str(error.retry_after)})
    if isinstance(error, OverShare):
        return TFServingError(429, error.message, {"Retry-After": str(error.retry_after)})
    if isinstance(error, Unavailable):
        return TFServingError(503, error.message)
    if isinstance(error, InvalidInput):
        return bad_request(error.message)
    return None
