"""The Open Inference Protocol (v2) and Triton's binary tensor data extension (fast tier, NumPy
stand-in): the routes, JSON and status codes of ``inference_rest.md``, the binary extension's
framing (``Inference-Header-Content-Length``, ``binary_data_size``, ``binary_data``,
``binary_data_output``), one v2 model per signature, the version policy, the batcher and
admission control, and the negative cases. The real clients (tritonclient, the KServe SDK) on
a real model and server: ``tests/e2e/test_v2_clients.py``."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.protocols import v2
from tests.support.fakes import FakeLoader, FakeModel, Gate, make_versions

HEADER = "Inference-Header-Content-Length"
MODELS = {
    "vae": "serving_default",
    "vae-decode": "decode",
    "vae-encode": "encode",
    "vae-sample": "sample",
    "vae-sample-digit": "sample_digit",
    "vae-sample-batch": "sample_batch",
    "vae-log-weights": "log_weights",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    model_dir = make_versions(tmp_path_factory.mktemp("models"), 1, 2, 3, failing={3: "DATA_LOSS"})
    settings = Settings(
        model_dir=model_dir,
        model_poll_seconds=0,
        model_versions="all",
        max_batch=8,
        max_score_samples=64,
    )
    with TestClient(create_app(settings, FakeLoader())) as client:
        yield client


MODEL = FakeModel(2)  # the newest served version: what unversioned requests get
Z = np.random.default_rng(0).normal(size=(3, 20)).astype(np.float32)


def infer(client, body, model="vae", version=None, headers=None):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(path, content=raw, headers=headers or {})


def binary_request(document: dict, *tensors: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """The JSON header followed by the tensors' little-endian bytes, and the header length."""
    head = json.dumps(document).encode()
    body = head + b"".join(
        np.ascontiguousarray(t, t.dtype.newbyteorder("<")).tobytes() for t in tensors
    )
    return body, {HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def split(response) -> tuple[dict, bytes]:
    """A response's JSON and the binary data after it."""
    length = int(response.headers[HEADER])
    return json.loads(response.content[:length]), response.content[length:]


def z_input(z=Z, **changes):
    return {"name": "z", "shape": list(z.shape), "datatype": "FP32", "data": z.tolist(), **changes}


# --- server ---------------------------------------------------------------------------------------
def test_server_metadata_names_the_binary_extension_and_maps_every_signature(client):
    body = client.get("/v2").json()
    assert body["name"] == "vae-digits" and body["version"]
    assert body["extensions"] == ["binary_tensor_data"]
    assert {m["name"]: m["signature"] for m in body["models"]} == MODELS
    assert client.get("/v2/").json() == body  # the protocol's OpenAPI file writes /v2/


def test_live_and_ready(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_before_any_version_is_loaded_ready_and_infer_are_503_with_retry_after(tmp_path):
    settings = Settings(model_dir=tmp_path, model_poll_seconds=0)
    with TestClient(create_app(settings, FakeLoader())) as client:
        assert client.get("/v2/health/live").status_code == 200
        for response in (
            client.get("/v2/health/ready"),
            client.get("/v2/models/vae/ready"),
            client.get("/v2/models/vae"),
            infer(client, {"inputs": [z_input()]}),
        ):
            assert response.status_code == 503, response.text
            assert "no model version" in response.json()["error"]
            assert int(response.headers["retry-after"]) >= 1
        # The contract's models are listed all the same.
        assert {m["name"] for m in client.get("/v2").json()["models"]} == set(MODELS)


# --- models ---------------------------------------------------------------------------------------
def test_model_metadata_gives_datatypes_shapes_with_minus_one_and_the_platform(client):
    assert client.get("/v2/models/vae").json() == {
        "name": "vae",
        "versions": ["1", "2"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "z", "datatype": "FP32", "shape": [-1, 20]}],
        "outputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 28, 28]}],
    }
    batch = client.get("/v2/models/vae-sample-batch").json()
    assert batch["inputs"] == [
        {"name": "seeds", "datatype": "INT64", "shape": [-1]},
        {"name": "indices", "datatype": "INT64", "shape": [-1]},
        {"name": "temperatures", "datatype": "FP32", "shape": [-1]},
        {"name": "digits", "datatype": "INT32", "shape": [-1]},
    ]
    assert [o["name"] for o in batch["outputs"]] == ["latents", "images"]
    weights = client.get("/v2/models/vae-log-weights").json()
    assert weights["inputs"][1:] == [
        {"name": "samples", "datatype": "INT32", "shape": []},  # scalars: rank 0
        {"name": "seed", "datatype": "INT64", "shape": []},
    ]
    assert weights["outputs"] == [{"name": "log_weights", "datatype": "FP32", "shape": [-1, -1]}]


def test_every_model_has_metadata_and_is_ready_in_every_served_version(client):
    for name in MODELS:
        for version in ("", "/versions/1", "/versions/2"):
            assert client.get(f"/v2/models/{name}{version}").json()["name"] == name
            assert client.get(f"/v2/models/{name}{version}/ready").json() == {
                "name": name,
                "ready": True,
            }


@pytest.mark.parametrize(
    "path, message",
    [
        ("/v2/models/half", "unknown model 'half'; models: vae, vae-decode, vae-encode"),
        ("/v2/models/vae-sample_batch/ready", "unknown model"),  # one name per signature
        ("/v2/models/vae-serving-default", "unknown model"),  # that one is vae
        ("/v2/models/vae/versions/7", "unknown version 7 of model 'vae'"),
        ("/v2/models/vae/versions/3/ready", "unknown version 3"),  # failed to load
        ("/v2/models/vae/versions/x", "unknown version 'x'"),
        ("/v2/models/vae/versions/0/ready", "unknown version '0'"),
        ("/v2/models/vae/config", "not found: GET /v2/models/vae/config"),  # Triton's, not ours
        ("/v2/repository/index", "not found"),
    ],
)
def test_unknown_models_versions_and_paths_are_404_with_an_error(client, path, message):
    response = client.get(path)
    assert response.status_code == 404 and message in response.json()["error"], response.text


def test_another_method_on_a_v2_route_stays_405_allowing_post(client):
    response = client.get("/v2/models/vae/infer")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert "error" in response.json()


def test_a_version_without_the_signature_has_not_that_model(tmp_path):
    class NoDigits(FakeLoader):
        def __call__(self, path: Path) -> FakeModel:
            model = super().__call__(path)
            model.signatures = {k: v for k, v in model.signatures.items() if k != "sample_digit"}
            return model

    settings = Settings(model_dir=make_versions(tmp_path, 1), model_poll_seconds=0)
    with TestClient(create_app(settings, NoDigits())) as client:
        response = client.get("/v2/models/vae-sample-digit/ready")
        assert response.status_code == 404
        assert "no sample_digit signature" in response.json()["error"]
        assert "vae-sample-digit" not in {m["name"] for m in client.get("/v2").json()["models"]}


# --- inference: JSON ------------------------------------------------------------------------------
def test_json_tensors_nested_or_flat_give_the_decoded_images_and_echo_the_id(client):
    nested = infer(client, {"id": "42", "inputs": [z_input()]})
    assert nested.status_code == 200 and nested.headers["content-type"] == "application/json"
    assert HEADER.lower() not in nested.headers
    body = nested.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("vae", "2", "42")
    (output,) = body["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("images", "FP32", [3, 28, 28])
    images = np.array(output["data"], np.float32).reshape(output["shape"])
    np.testing.assert_allclose(images, MODEL.decode(Z), rtol=1e-6, atol=1e-7)
    flat = infer(client, {"id": "42", "inputs": [z_input(data=Z.ravel().tolist())]}).json()
    assert flat == body


def test_json_outputs_are_the_float32_values_themselves(client):
    """Written in float32's shortest text: read back as float32, the very same numbers."""
    (output,) = infer(client, {"inputs": [z_input()]}).json()["outputs"]
    body, headers = binary_request(
        {"inputs": [Z_BINARY], "parameters": {"binary_data_output": True}}, Z
    )
    _, data = split(infer(client, body, headers=headers))
    np.testing.assert_array_equal(np.array(output["data"], np.float32), np.frombuffer(data, "<f4"))


def test_without_an_id_the_answer_has_none(client):
    assert "id" not in infer(client, {"inputs": [z_input()]}).json()


def test_integer_json_values_are_taken_for_fp32(client):
    zeros = infer(client, {"inputs": [z_input(data=[0] * 60)]}).json()
    floats = infer(client, {"inputs": [z_input(data=[0.0] * 60)]}).json()
    assert zeros == floats


def test_several_inputs_and_the_outputs_asked_for(client):
    inputs = [
        {"name": "seeds", "shape": [2], "datatype": "INT64", "data": [7, 7]},
        {"name": "indices", "shape": [2], "datatype": "INT64", "data": [0, 1]},
        {"name": "temperatures", "shape": [2], "datatype": "FP32", "data": [1.0, 1.0]},
        {"name": "digits", "shape": [2], "datatype": "INT32", "data": [-1, 3]},
    ]
    every = infer(client, {"inputs": inputs}, "vae-sample-batch").json()["outputs"]
    assert [o["name"] for o in every] == ["latents", "images"]
    expected = MODEL.latents([7, 7], [0, 1], [1.0, 1.0], [-1, 3])
    np.testing.assert_allclose(np.reshape(every[0]["data"], (2, 20)), expected, rtol=1e-6)
    # Inputs in any order; only the outputs named, in the order named.
    one = infer(
        client, {"inputs": inputs[::-1], "outputs": [{"name": "latents"}]}, "vae-sample-batch"
    ).json()["outputs"]
    assert one == every[:1]


def test_scalar_inputs_take_shape_empty_or_one(client):
    def sample(shape):
        inputs = [
            {"name": "count", "shape": shape, "datatype": "INT32", "data": [3]},
            {"name": "seed", "shape": shape, "datatype": "INT64", "data": [5]},
            {"name": "temperature", "shape": shape, "datatype": "FP32", "data": [0.5]},
        ]
        return infer(client, {"inputs": inputs}, "vae-sample")

    scalar, one = sample([]), sample([1])
    assert scalar.status_code == 200 and scalar.json() == one.json()
    latents = scalar.json()["outputs"][0]
    assert latents["shape"] == [3, 20]
    np.testing.assert_allclose(
        np.reshape(latents["data"], (3, 20)),
        MODEL.latents([5] * 3, range(3), [0.5] * 3, [-1] * 3),
        rtol=1e-6,
    )


def test_a_versioned_url_infers_with_that_version(client):
    for version in ("1", "2"):
        response = infer(client, {"inputs": [z_input()]}, version=version)
        assert response.json()["model_version"] == version
        assert response.headers["x-model-version"] == version
        data = np.array(response.json()["outputs"][0]["data"], np.float32).reshape(3, 28, 28)
        np.testing.assert_allclose(data, FakeModel(int(version)).decode(Z), rtol=1e-6, atol=1e-7)


# --- inference: binary tensor data ----------------------------------------------------------------
def test_binary_inputs_and_outputs(client):
    body, headers = binary_request(
        {
            "id": "b",
            "inputs": [
                {
                    "name": "z",
                    "shape": [3, 20],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 240},
                }
            ],
            "outputs": [{"name": "images", "parameters": {"binary_data": True}}],
        },
        Z,
    )
    response = infer(client, body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    document, data = split(response)
    assert document == {
        "model_name": "vae",
        "model_version": "2",
        "id": "b",
        "outputs": [
            {
                "name": "images",
                "datatype": "FP32",
                "shape": [3, 28, 28],
                "parameters": {"binary_data_size": 3 * 784 * 4},
            }
        ],
    }
    images = np.frombuffer(data, "<f4").reshape(3, 28, 28)
    json_images = infer(client, {"inputs": [z_input()]}).json()["outputs"][0]["data"]
    np.testing.assert_array_equal(images.ravel(), np.array(json_images, np.float32))


def test_binary_data_output_applies_to_every_output_unless_one_says_otherwise(client):
    seeds, indices = np.array([1, 2], "<i8"), np.array([0, 0], "<i8")
    temperatures, digits = np.array([1, 1], "<f4"), np.array([-1, 4], "<i4")
    tensors = (seeds, indices, temperatures, digits)
    names = ("seeds", "indices", "temperatures", "digits")
    types = ("INT64", "INT64", "FP32", "INT32")
    inputs = [
        {"name": n, "shape": [2], "datatype": t, "parameters": {"binary_data_size": a.nbytes}}
        for n, t, a in zip(names, types, tensors, strict=True)
    ]
    body, headers = binary_request(
        {
            "inputs": inputs,
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "images"},
                {"name": "latents", "parameters": {"binary_data": False}},
            ],
        },
        *tensors,
    )
    document, data = split(infer(client, body, "vae-sample-batch", headers=headers))
    images, latents = document["outputs"]
    assert images["parameters"] == {"binary_data_size": len(data)} and "data" not in images
    assert "parameters" not in latents and len(latents["data"]) == 40
    np.testing.assert_allclose(
        np.reshape(latents["data"], (2, 20)),
        MODEL.latents([1, 2], [0, 0], [1, 1], [-1, 4]),
        rtol=1e-6,
    )


def test_json_and_binary_inputs_in_one_request(client):
    inputs = [
        {"name": "seeds", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}},
        {"name": "indices", "shape": [1], "datatype": "INT64", "data": [0]},
        {
            "name": "temperatures",
            "shape": [1],
            "datatype": "FP32",
            "parameters": {"binary_data_size": 4},
        },
        {"name": "digits", "shape": [1], "datatype": "INT32", "data": [2]},
    ]
    body, headers = binary_request(
        {"inputs": inputs, "outputs": [{"name": "latents"}]},
        np.array([9], "<i8"),
        np.array([0.5], "<f4"),
    )
    response = infer(client, body, "vae-sample-batch", headers=headers)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["outputs"][0]["data"], MODEL.latents([9], [0], [0.5], [2])[0], rtol=1e-6
    )


def test_a_raw_binary_request_deduces_the_shape_and_answers_in_binary(client):
    response = infer(client, Z.tobytes(), headers={HEADER: "0"})
    assert response.status_code == 200, response.text
    document, data = split(response)
    assert document["outputs"][0]["shape"] == [3, 28, 28]
    expected = infer(client, {"inputs": [z_input()]}).json()["outputs"][0]["data"]
    np.testing.assert_array_equal(np.frombuffer(data, "<f4"), np.array(expected, np.float32))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_request_body_is_read_as_tritonclient_sends_it(client, encoding):
    plain = json.dumps({"inputs": [z_input()]}).encode()
    packed = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    response = infer(client, packed, headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.json() == infer(client, plain).json()


@pytest.mark.parametrize(
    "encoding, body, status, message",
    [
        ("br", b"x", 415, "'br' is not supported"),
        ("gzip", b"not gzip", 400, "does not decompress"),
        ("gzip", gzip.compress(b"{}")[:-4], 400, "truncated"),
        ("gzip", gzip.compress(b" " * 2_000_000), 413, "more than 1048576 bytes (VAE_MAX_JSON"),
    ],
)
def test_bad_compressed_bodies(client, encoding, body, status, message):
    response = infer(client, body, headers={"Content-Encoding": encoding})
    assert response.status_code == status and message in response.json()["error"]


# --- the same machinery as the rest of the API ----------------------------------------------------
def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(0.005)


def test_v2_requests_are_merged_with_v1_decode_requests_in_one_model_call(tmp_path):
    gate = Gate()
    settings = Settings(model_dir=make_versions(tmp_path, 1), model_poll_seconds=0)
    app = create_app(settings, FakeLoader(gate=gate))
    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        runtime = app.state.runtime
        model = runtime.served.get().model
        first = pool.submit(client.post, "/v1/decode", json={"latents": [[0.0] * 20]})
        assert gate.waiting.wait(10)  # the first call holds the inference thread
        decode = pool.submit(client.post, "/v1/decode", json={"latents": Z[:2].tolist()})
        body, headers = binary_request(
            {
                "inputs": [
                    {
                        "name": "z",
                        "shape": [3, 20],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 240},
                    }
                ]
            },
            Z,
        )
        v2_answer = pool.submit(infer, client, body, "vae", None, headers)
        # Both admitted (1 + 2 + 3 rows in flight) means both are queued behind the first.
        wait_until(lambda: runtime.admission.rows == 6)
        gate.open()
        assert first.result().status_code == decode.result().status_code == 200
        assert v2_answer.result().status_code == 200
        assert model.calls[-1] == ("decode", 5)  # the v2 and v1 requests: one call


def test_a_v2_request_finishes_on_its_version_while_a_new_one_is_swapped_in(tmp_path):
    gate = Gate()  # holds model calls: the request is inside version 1 until it opens
    settings = Settings(model_dir=make_versions(tmp_path, 1), model_poll_seconds=0.05)
    app = create_app(settings, FakeLoader(gate=gate))
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(infer, client, {"inputs": [z_input()]})
        assert gate.waiting.wait(10), "the request never reached the model"
        make_versions(tmp_path, 2)
        wait_until(lambda: app.state.runtime.served.versions == [2])
        assert client.get("/v2/models/vae").json()["versions"] == ["2"]
        gate.open()
        held = pending.result()
        fresh = infer(client, {"inputs": [z_input()]})
    assert held.status_code == 200 and held.json()["model_version"] == "1"
    assert fresh.json()["model_version"] == "2"


def test_beyond_the_admitted_rows_infer_is_503_with_retry_after(tmp_path):
    gate = Gate()
    settings = Settings(
        model_dir=make_versions(tmp_path, 1), model_poll_seconds=0, max_queue_rows=4
    )
    with (
        TestClient(create_app(settings, FakeLoader(gate=gate))) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        held = pool.submit(infer, client, {"inputs": [z_input()]})
        assert gate.waiting.wait(10)
        refused = infer(client, {"inputs": [z_input()]})  # 3 + 3 rows > 4
        gate.open()
        assert held.result().status_code == 200
    assert refused.status_code == 503 and "VAE_MAX_QUEUE_ROWS" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1


def test_v2_requests_are_counted_by_route_template(client):
    infer(client, {"inputs": [z_input()]})
    text = client.get("/metrics").text
    series = 'method="POST",route="/v2/models/{model_name}/infer",status="200"'
    assert f"vae_http_requests_total{{{series}}}" in text


# --- inference: bad input -------------------------------------------------------------------------
def sample_batch(**changes):
    inputs = [
        {"name": "seeds", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "indices", "shape": [1], "datatype": "INT64", "data": [0]},
        {"name": "temperatures", "shape": [1], "datatype": "FP32", "data": [1.0]},
        {"name": "digits", "shape": [1], "datatype": "INT32", "data": [-1]},
    ]
    for item in inputs:
        item.update(changes.get(item["name"], {}))
    return {"inputs": inputs}


def weights(rows: int, samples: int):
    return {
        "inputs": [
            {
                "name": "images",
                "shape": [rows, 28, 28],
                "datatype": "FP32",
                "data": [0.5] * (rows * 784),
            },
            {"name": "samples", "shape": [], "datatype": "INT32", "data": [samples]},
            {"name": "seed", "shape": [], "datatype": "INT64", "data": [1]},
        ]
    }


def count(value: int):
    return {
        "inputs": [
            {"name": "count", "shape": [], "datatype": "INT32", "data": [value]},
            {"name": "seed", "shape": [], "datatype": "INT64", "data": [1]},
            {"name": "temperature", "shape": [], "datatype": "FP32", "data": [1.0]},
        ]
    }


BAD_JSON_INFERS = [
    ("", "vae", "the body is empty"),
    ("[1, 2]", "vae", "must be an object"),
    ('{"inputs": [', "vae", "does not parse"),
    ("[" * 100_000 + "]" * 100_000, "vae", "nested too deeply"),
    (
        '{"inputs": [{"name": "z", "shape": [1, 20], "datatype": "FP32", "data": [NaN]}]}',
        "vae",
        "not a JSON number",
    ),
    ({"inputs": []}, "vae", "non-empty list"),
    ({"inputs": "z"}, "vae", "non-empty list"),
    ({}, "vae", "non-empty list"),
    (
        {"inputs": [z_input()], "extra": 1},
        "vae",
        "unknown field(s) in the inference request: extra",
    ),
    ({"inputs": [z_input()], "id": 42}, "vae", "'id' must be a string"),
    ({"inputs": [z_input()], "id": None}, "vae", "'id' must be a string"),
    ({"inputs": [z_input()], "outputs": None}, "vae", "must be a list"),
    ({"inputs": [z_input()], "parameters": None}, "vae", "must be an object"),
    ({"inputs": [z_input(parameters=None)]}, "vae", "must be an object"),
    ({"inputs": [z_input()], "model_name": None}, "vae", "names model None"),
    ({"inputs": [z_input()], "model_name": "vae-encode"}, "vae", "names model 'vae-encode'"),
    ({"inputs": [z_input()], "parameters": {"priority": 1}}, "vae", "unknown parameter 'priority'"),
    (
        {"inputs": [z_input()], "parameters": {"binary_data_output": 1}},
        "vae",
        "must be true or false",
    ),
    ({"inputs": [z_input()], "parameters": []}, "vae", "must be an object"),
    ({"inputs": [z_input(), z_input()]}, "vae", "given twice"),
    ({"inputs": [z_input(name="x")]}, "vae", "unknown input 'x' for model 'vae' (it takes z)"),
    ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, "vae", "no 'name'"),
    ({"inputs": [z_input(datatype="FP64")]}, "vae", "has datatype FP64, model 'vae' takes FP32"),
    ({"inputs": [z_input(datatype="FLOAT")]}, "vae", "unknown datatype 'FLOAT'"),
    ({"inputs": [z_input(shape=[3, 21])]}, "vae", "has shape [3,21], model 'vae' takes [-1,20]"),
    ({"inputs": [z_input(shape=[60])]}, "vae", "takes [-1,20]"),
    ({"inputs": [z_input(shape=[3, -20])]}, "vae", "non-negative integers"),
    ({"inputs": [z_input(shape=[3, 20.0])]}, "vae", "non-negative integers"),
    ({"inputs": [z_input(shape=[3, True])]}, "vae", "non-negative integers"),
    ({"inputs": [z_input(shape="3,20")]}, "vae", "non-negative integers"),
    ({"inputs": [z_input(shape=[0, 20], data=[])]}, "vae", "is empty"),
    ({"inputs": [z_input(shape=[2, 20])]}, "vae", "has 60 values, shape [2,20] holds 40"),
    ({"inputs": [z_input(data=Z.tolist()[:2] + [Z.tolist()[2][:19]])]}, "vae", "has 59 values"),
    ({"inputs": [z_input(data=[[Z.tolist()]])]}, "vae", "nested more deeply"),
    ({"inputs": [z_input(data=[Z.tolist()[0], 1.0])]}, "vae", "lists mixed with numbers"),
    ({"inputs": [z_input(data=["0.5"] * 60)]}, "vae", "must be numbers, not strings"),
    ({"inputs": [z_input(data=[True] * 60)]}, "vae", "not true/false"),
    ({"inputs": [z_input(data=[None] * 60)]}, "vae", "not null"),
    ({"inputs": [z_input(data=[{}] * 60)]}, "vae", "not objects"),
    ({"inputs": [z_input(data=0.5)]}, "vae", "must be a JSON array"),
    ({"inputs": [z_input(data=[1e300] * 60)]}, "vae", "NaN or infinite"),
    ({"inputs": [z_input(data=None)]}, "vae", "must be a JSON array"),
    ({"inputs": [{k: v for k, v in z_input().items() if k != "data"}]}, "vae", "no 'data'"),
    (
        {"inputs": [z_input(parameters={"shared_memory_region": "r"})]},
        "vae",
        "unknown parameter 'shared_memory_region'",
    ),
    (
        {"inputs": [z_input(parameters={"binary_data_size": 240})]},
        "vae",
        "both 'data' and binary_data_size",
    ),
    ({"inputs": [z_input(extra=1)]}, "vae", "unknown field(s) in input 0: extra"),
    (
        {"inputs": [z_input()], "outputs": [{"name": "nope"}]},
        "vae",
        "unknown output 'nope' for model 'vae' (it has images)",
    ),
    ({"inputs": [z_input()], "outputs": [{"name": "images"}] * 2}, "vae", "requested twice"),
    ({"inputs": [z_input()], "outputs": "images"}, "vae", "must be a list"),
    (
        {
            "inputs": [z_input()],
            "outputs": [{"name": "images", "parameters": {"classification": 3}}],
        },
        "vae",
        "unknown parameter 'classification'",
    ),
    (
        {
            "inputs": [z_input()],
            "outputs": [{"name": "images", "parameters": {"binary_data": "yes"}}],
        },
        "vae",
        "must be true or false",
    ),
    (
        sample_batch(seeds={"data": [1.5]}),
        "vae-sample-batch",
        "INT64 data must be integers, not fractions",
    ),
    (sample_batch(seeds={"data": [2**63]}), "vae-sample-batch", "does not fit in INT64"),
    (sample_batch(digits={"data": [2**31]}), "vae-sample-batch", "does not fit in INT32"),
    (sample_batch(digits={"data": [12]}), "vae-sample-batch", "digits"),  # the model's own check
    (sample_batch(seeds={"shape": [2], "data": [1, 2]}), "vae-sample-batch", "one row per example"),
    ({"inputs": sample_batch()["inputs"][:3]}, "vae-sample-batch", "needs input(s) digits"),
    (
        {"inputs": [z_input(shape=[9, 20], data=[0.0] * 180)]},
        "vae",
        "at most 8 examples per request (VAE_MAX_BATCH)",
    ),
    (count(9), "vae-sample", "at most 8 examples"),
    (count(0), "vae-sample", "count must be at least 1"),
    (
        weights(2, 40),
        "vae-log-weights",
        "samples must be 1..32 for 2 images (VAE_MAX_SCORE_SAMPLES",
    ),
    (weights(1, 0), "vae-log-weights", "samples must be 1..64"),
]


@pytest.mark.parametrize("body, model, message", BAD_JSON_INFERS)
def test_bad_json_requests_are_400_saying_what_is_wrong(client, body, model, message):
    response = infer(client, body, model)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]


Z_BINARY = {
    "name": "z",
    "shape": [3, 20],
    "datatype": "FP32",
    "parameters": {"binary_data_size": 240},
}
BAD_BINARY_INFERS = [
    (
        "binary data but no header length",
        json.dumps({"inputs": [Z_BINARY]}).encode() + Z.tobytes(),
        None,
        "needs the Inference-Header-Content-Length header",
    ),
    ("header length not a number", None, "x", "must be a number of bytes"),
    ("header length negative", None, "-5", "must be a number of bytes"),
    ("header length past the body", None, "100000", "the body has only"),
    ("header length cuts the JSON", None, "20", "does not parse"),
    (
        "size disagrees with the shape",
        {"inputs": [{**Z_BINARY, "parameters": {"binary_data_size": 236}}]},
        None,
        "binary_data_size is 236 bytes, shape [3,20] of FP32 takes 240",
    ),
    (
        "size not an integer",
        {"inputs": [{**Z_BINARY, "parameters": {"binary_data_size": "240"}}]},
        None,
        "must be an integer",
    ),
    ("bytes missing", ("short", 200), None, "the body ends 40 bytes before"),
    (
        "bytes left over",
        ("long", 250),
        None,
        "10 bytes after the JSON header and the inputs' binary data",
    ),
    ("binary data nobody claims", {"inputs": [z_input()]}, None, "no input has a binary_data_size"),
    ("NaN in the bytes", ("nan", 240), None, "NaN or infinite"),
    ("raw binary, not whole rows", b"\0" * 50, "0", "not a whole FP32 tensor of shape [-1,20]"),
    ("raw binary, empty", b"", "0", "not a whole FP32 tensor"),
]


def bad_binary(case, header_length):
    if isinstance(case, bytes):
        return case, {HEADER: header_length} if header_length is not None else {}
    if case is None:  # a good request with a bad header length
        body, headers = binary_request({"inputs": [Z_BINARY]}, Z)
        return body, {HEADER: header_length}
    if isinstance(case, tuple):
        kind, size = case
        values = Z.copy()
        if kind == "nan":
            values[1, 3] = np.nan
        body, headers = binary_request({"inputs": [Z_BINARY]}, values)
        tail = len(body) - int(headers[HEADER])
        return body[: len(body) - tail + size] + b"\0" * max(0, size - tail), headers
    body, headers = binary_request(case, Z)
    return body, headers


@pytest.mark.parametrize(
    "name, case, header_length, message", BAD_BINARY_INFERS, ids=[c[0] for c in BAD_BINARY_INFERS]
)
def test_bad_binary_requests_are_400_saying_what_is_wrong(
    client, name, case, header_length, message
):
    body, headers = bad_binary(case, header_length)
    response = infer(client, body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_a_raw_binary_request_needs_a_model_with_one_input(client):
    response = infer(client, b"\0" * 16, "vae-sample-batch", headers={HEADER: "0"})
    assert response.status_code == 400 and "models with one input" in response.json()["error"]


@pytest.mark.parametrize("model", ["half", "vae-sample_batch"])
def test_infer_on_an_unknown_model_is_404(client, model):
    response = infer(client, {"inputs": [z_input()]}, model)
    assert response.status_code == 404 and "unknown model" in response.json()["error"]


@pytest.mark.parametrize("version", ["3", "9", "x"])
def test_infer_on_an_unknown_or_failed_version_is_404(client, version):
    response = infer(client, {"inputs": [z_input()]}, version=version)
    assert response.status_code == 404 and "unknown version" in response.json()["error"]


# --- the protocol module's own helpers ---------------------------------------------------------
def test_model_names_and_signatures_map_both_ways():
    for name, signature in MODELS.items():
        assert v2.model_name(signature) == name and v2.signature_name(name) == signature
    assert v2.run_signature("serving_default") == "decode"


def test_json_outputs_of_every_kind_read_back_the_same():
    answer = v2.InferAnswer("m", "1", "x", (v2.RequestedOutput("a", False),))
    for values in (
        np.array([[0.1, 1e-30], [3.4e38, -2.5]], np.float32),
        np.array([[-(2**31), 2**31 - 1]], np.int32),
        np.array([-(2**63), 2**63 - 1], np.int64),
        np.array([np.nan, np.inf, -np.inf, 1.5], np.float32),  # written NaN, Infinity
        np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],  # not contiguous
    ):
        encoded = answer.encode({"a": values})
        assert encoded.json_length is None
        (output,) = json.loads(encoded.body)["outputs"]
        assert output["shape"] == list(values.shape)
        read = np.array(output["data"], values.dtype).reshape(values.shape)
        np.testing.assert_array_equal(read, values)


def test_the_docs_map_every_model_to_its_signature():
    page = (Path(__file__).resolve().parents[3] / "docs" / "open-inference-protocol.md").read_text()
    for name, signature in MODELS.items():
        assert f"| `{name}` | `{signature}` |" in page


def test_the_openapi_description_has_the_v2_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/versions/{model_version}/ready",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    } <= set(paths)
