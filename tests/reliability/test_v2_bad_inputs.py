"""Bad input to the Open Inference Protocol's routes from attackers and careless clients,
through a real server process (uvicorn as ``vae-serve`` runs it, the NumPy stand-in model):
hostile JSON, binary tensor data whose byte counts disagree with the header or the shapes,
unknown parameters, JSON and binary mixed wrongly, absurd shapes and header values, compressed
bodies that decompress to too much or to nothing. Every answer must be a 4xx in JSON, never a
5xx; no connection may be dropped without an answer; the service must still be ready
afterwards. ``test_bad_inputs.py`` does the same for the service's own routes and TensorFlow
Serving's."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Iterator

import pytest

JSON = {"Content-Type": "application/json"}
HEADER = "Inference-Header-Content-Length"
INFER = "/v2/models/vae/infer"
Z = struct.pack("<60f", *([0.25] * 60))  # three codes of 20 float32s


@pytest.fixture(autouse=True)
def still_ready(server, client) -> Iterator[None]:
    yield
    assert server.process.poll() is None, server.log()
    assert client.get("/v2/health/ready").status_code == 200


def z(**changes) -> bytes:
    """A JSON request for ``vae`` with one change to its input (None removes a field)."""
    tensor = {"name": "z", "shape": [1, 20], "datatype": "FP32", "data": [0.5] * 20}
    tensor.update(changes)
    return json.dumps({"inputs": [{k: v for k, v in tensor.items() if v is not None}]}).encode()


def binary(head: dict | bytes, tail: bytes, length: int | str | bytes | None = None) -> tuple:
    """A binary request: the JSON header, the tail, the header length (default: the JSON's)."""
    raw = head if isinstance(head, bytes) else json.dumps(head).encode()
    value = str(len(raw) if length is None else length)
    header = length if isinstance(length, bytes) else value.encode()
    return raw + tail, {HEADER: header, "Content-Type": "application/octet-stream"}


def z_binary(size: int = 240, shape=(3, 20), datatype: str = "FP32", **extra) -> dict:
    parameters = {"binary_data_size": size, **extra}
    tensor = {"name": "z", "shape": list(shape), "datatype": datatype, "parameters": parameters}
    return {"inputs": [tensor]}


def deep(depth: int) -> bytes:
    return b'{"inputs": [{"name": "z", "shape": [1, 20], "datatype": "FP32", "data": ' + (
        b"[" * depth + b"]" * depth + b"}]}"
    )


HOSTILE: dict[str, tuple[bytes, dict[str, str]]] = {
    # hostile JSON
    "NaN": (z(data=[float("nan")] * 20), JSON),
    "Infinity token": (z(data=[float("inf")] * 20), JSON),
    "1e400": (z(data=[1e400] * 20).replace(b"Infinity", b"1e400"), JSON),
    "5,000-digit integer": (z().replace(b"0.5,", b"9" * 5000 + b",", 1), JSON),
    "5,000-digit shape": (z().replace(b"[1, 20]", b"[1" + b"0" * 5000 + b", 20]"), JSON),
    "nesting 100,000 deep": (deep(100_000), JSON),
    "object nesting 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, JSON),
    "10^6-element data": (z(shape=[1, 20], data=[0] * 10**6), JSON),
    "10^4 rows": (z(shape=[10**4, 20], data=[[0] * 20] * 10**4), JSON),
    "duplicate keys": (b'{"inputs": [], "inputs": "x"}', JSON),
    "truncated": (z()[:-5], JSON),
    "trailing garbage": (z() + b" {}", JSON),
    "invalid UTF-8": (z().replace(b'"z"', b'"\xff\xfe"'), JSON),
    "lone surrogate": (z().replace(b'"z"', b'"\\ud800"'), JSON),
    "NUL bytes": (z() + b"\x00", JSON),
    "empty body": (b"", JSON),
    "null body": (b"null", JSON),
    "string body": (b'"inputs"', JSON),
    "2 MiB string (over VAE_MAX_JSON_BYTES)": (b'{"id": "' + b"a" * 2 * 1024 * 1024 + b'"}', JSON),
    "multipart": (b"--b\r\n\r\n--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}),
    "XML": (b"<inputs/>", {"Content-Type": "application/xml"}),
    # wrong values
    "string data": (z(data=["0.5"] * 20), JSON),
    "bool data": (z(data=[True] * 20), JSON),
    "null data": (z(data=None), JSON),
    "object data": (z(data={"a": 1}), JSON),
    "ragged data": (z(shape=[2, 20], data=[[0.5] * 20, [0.5] * 19]), JSON),
    "negative dimension": (z(shape=[-1, 20]), JSON),
    "2^64 dimension": (z(shape=[2**64, 20]), JSON),
    "10^9 rows declared, one sent": (z(shape=[10**9, 20]), JSON),
    "fractional dimension": (z(shape=[1.5, 20]), JSON),
    "rank 5": (z(shape=[1, 1, 1, 1, 20]), JSON),
    "unknown datatype": (z(datatype="FP8"), JSON),
    "BYTES datatype": (z(datatype="BYTES"), JSON),
    "wrong datatype": (z(datatype="INT64"), JSON),
    "datatype not a string": (z(datatype=32), JSON),
    "unknown input": (z(name="x"), JSON),
    "name not a string": (z(name=["z"]), JSON),
    "unknown request parameter": (b'{"inputs": [], "parameters": {"sequence_id": 1}}', JSON),
    "unknown input parameter": (z(parameters={"shared_memory_region": "r"}), JSON),
    "unknown field": (z(extra=True), JSON),
    "outputs not a list": (
        json.dumps({"inputs": [], "outputs": {"name": "images"}}).encode(),
        JSON,
    ),
    "more rows than VAE_MAX_BATCH": (z(shape=[300, 20], data=[0.5] * 6000), JSON),
    # binary tensor data, wrongly framed
    "binary data, no header length": (json.dumps(z_binary()).encode() + Z, {}),
    "header length negative": binary(z_binary(), Z, -1),
    "header length 2^70": binary(z_binary(), Z, 2**70),
    "header length fractional": binary(z_binary(), Z, "12.5"),
    "header length with a sign": binary(z_binary(), Z, "+12"),
    "header length in other digits": binary(z_binary(), Z, "²".encode("latin-1")),
    "header length empty": binary(z_binary(), Z, ""),
    "header length cuts the JSON": binary(z_binary(), Z, 10),
    "header length past the body": binary(z_binary(), Z, 10**6),
    "binary_data_size too small": binary(z_binary(size=200), Z),
    "binary_data_size too large": binary(z_binary(size=10**12, shape=(10**12 // 80, 20)), Z),
    "binary_data_size negative": binary(z_binary(size=-240), Z),
    "binary_data_size fractional": binary(z_binary(size=240.0), Z),
    "binary_data_size a bool": binary(z_binary(size=True), Z),
    "binary_data_size a string": binary(z_binary(size="240"), Z),
    "bytes missing": binary(z_binary(), Z[:-7]),
    "bytes left over": binary(z_binary(), Z + b"\0" * 13),
    "binary and JSON data on one input": binary(
        {"inputs": [{**z_binary()["inputs"][0], "data": [0.5] * 60}]}, Z
    ),
    "JSON input, then unclaimed bytes": binary(json.loads(z()), Z),
    "NaN bytes": binary(z_binary(), struct.pack("<60f", *([float("nan")] * 60))),
    "infinite bytes": binary(z_binary(), struct.pack("<60f", *([float("inf")] * 60))),
    "binary output parameter not a bool": binary(
        {**z_binary(), "outputs": [{"name": "images", "parameters": {"binary_data": 1}}]}, Z
    ),
    "shared memory output": binary(
        {
            **z_binary(),
            "outputs": [{"name": "images", "parameters": {"shared_memory_region": "r"}}],
        },
        Z,
    ),
    "gzip bomb: 20 MB in 20 KB": (gzip.compress(b" " * 20_000_000), {"Content-Encoding": "gzip"}),
    "deflate, corrupt": (zlib.compress(z())[:-9] + b"\xff" * 9, {"Content-Encoding": "deflate"}),
    "gzip named, JSON sent": (z(), {"Content-Encoding": "gzip"}),
    "unknown Content-Encoding": (z(), {"Content-Encoding": "zstd"}),
    "raw binary, partial row": (b"\0" * 81, {HEADER: "0"}),
    "raw binary, empty": (b"", {HEADER: "0"}),
    "raw binary, NaN": (struct.pack("<20f", *([float("nan")] * 20)), {HEADER: "0"}),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_v2_requests_are_refused_with_a_4xx_error(client, name):
    body, headers = HOSTILE[name]
    response = client.post(INFER, content=body, headers=headers)
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) in ({"error"}, {"detail"}), answer  # 413 is the request guard's
    assert "/work" not in response.text and "Traceback" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/%00/infer",
        "/v2/models/" + "v" * 10_000 + "/infer",
        "/v2/models/vae/versions/99999999999999999999999/infer",
        "/v2/models/vae/versions/-1/infer",
        "/v2/models/vae/versions/1/infer/extra",
    ],
)
def test_hostile_paths_get_a_v2_404(client, path):
    response = client.post(path, content=z(), headers=JSON)
    assert response.status_code == 404, (path, response.status_code, response.text[:300])
    assert "error" in response.json()


def test_a_good_binary_request_still_works_after_all_that(client):
    body, headers = binary({**z_binary(), "parameters": {"binary_data_output": True}}, Z)
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200
    assert int(response.headers[HEADER]) < len(response.content)
