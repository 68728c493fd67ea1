"""The Open Inference Protocol's real clients, unchanged, against a real ``vae-serve`` process
(loopback) serving a real trained model in two versions: NVIDIA's ``tritonclient`` (HTTP; binary
tensors by default, JSON on request) and the KServe SDK's REST client for v2. Their answers are
the model's: equal to ``/v1/decode``'s, ``/v1/generate``'s and TensorFlow Serving's
``:predict``'s for the same inputs."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

triton = pytest.importorskip("tritonclient.http", reason="a dev dependency: tritonclient[http]")
kserve = pytest.importorskip("kserve", reason="a dev dependency: kserve")
from tritonclient.utils import InferenceServerException  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CODES = np.random.default_rng(0).normal(size=(5, 20)).astype(np.float32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory) -> Iterator[str]:
    """``vae-serve`` serving versions 1 and 2 (a copy of 1) of the session's trained model."""
    models = tmp_path_factory.mktemp("v2-models")
    shutil.copytree(model_dir / "vae" / "1", models / "vae" / "1")
    shutil.copytree(model_dir / "vae" / "1", models / "vae" / "2")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VAE_")},
        "VAE_MODEL_DIR": str(models),
        "VAE_MODEL_VERSIONS": "all",
        "VAE_WORKERS": "1",
        "VAE_MODEL_POLL_SECONDS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log_path = models / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://{url}/v2/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "vae-serve was not ready: " + log_path.read_text()
        time.sleep(0.3)
    yield url
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def client(server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server)
    yield client
    client.close()


def z_input(codes: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("z", list(codes.shape), "FP32")
    tensor.set_data_from_numpy(codes, binary_data=binary)
    return tensor


# --- tritonclient ---------------------------------------------------------------------------------
def test_tritonclient_health_and_readiness(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("vae") and client.is_model_ready("vae-encode")
    assert client.is_model_ready("vae", "1") and client.is_model_ready("vae-sample-batch", "2")
    assert not client.is_model_ready("vae", "3")
    assert not client.is_model_ready("nope")


def test_tritonclient_server_and_model_metadata(client):
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    models = {m["name"]: m["signature"] for m in server["models"]}
    assert models["vae"] == "serving_default" and models["vae-log-weights"] == "log_weights"
    assert client.get_model_metadata("vae") == {
        "name": "vae",
        "versions": ["1", "2"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "z", "datatype": "FP32", "shape": [-1, 20]}],
        "outputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 28, 28]}],
    }
    encode = client.get_model_metadata("vae-encode", "2")
    assert encode["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 28, 28]}]
    assert [o["name"] for o in encode["outputs"]] == ["mu", "sigma", "log_var"]


def test_tritonclient_binary_and_json_tensors_answer_the_same_images(client):
    binary = client.infer("vae", [z_input(CODES)], request_id="binary")
    assert binary.get_response()["id"] == "binary"
    assert binary.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 5 * 784 * 4
    as_json = client.infer(
        "vae",
        [z_input(CODES, binary=False)],
        outputs=[triton.InferRequestedOutput("images", binary_data=False)],
    )
    assert "data" in as_json.get_response()["outputs"][0]
    # The same computation on the same rows (each request alone): the very same float32s.
    np.testing.assert_array_equal(binary.as_numpy("images"), as_json.as_numpy("images"))
    assert binary.as_numpy("images").shape == (5, 28, 28)


def test_tritonclient_compressed_requests(client):
    plain = client.infer("vae", [z_input(CODES)]).as_numpy("images")
    for algorithm in ("gzip", "deflate"):
        packed = client.infer(
            "vae", [z_input(CODES)], request_compression_algorithm=algorithm
        ).as_numpy("images")
        np.testing.assert_array_equal(packed, plain)


def test_tritonclient_answers_what_decode_and_predict_answer(client, server):
    images = client.infer("vae", [z_input(CODES)]).as_numpy("images")
    npy = httpx.post(
        f"http://{server}/v1/decode",
        json={"latents": CODES.tolist()},
        headers={"Accept": "application/x-npy"},
    )
    pixels = np.load(io.BytesIO(npy.content)).astype(int)
    as_pixels = np.round(np.clip(images, 0, 1) * 255).astype(int)
    np.testing.assert_allclose(as_pixels, pixels, atol=1)
    predicted = httpx.post(
        f"http://{server}/v1/models/vae:predict", json={"instances": CODES.tolist()}
    ).json()["predictions"]
    np.testing.assert_allclose(images, np.array(predicted, np.float32), rtol=1e-5, atol=1e-6)


def test_tritonclient_infers_on_each_version(client):
    answers = {}
    for version in ("1", "2"):
        result = client.infer("vae", [z_input(CODES)], model_version=version)
        assert result.get_response()["model_version"] == version
        answers[version] = result.as_numpy("images")
    np.testing.assert_allclose(answers["1"], answers["2"], rtol=1e-5, atol=1e-6)  # a copy
    with pytest.raises(InferenceServerException) as missing:
        client.infer("vae", [z_input(CODES)], model_version="3")
    assert missing.value.status() == "404" and "unknown version 3" in missing.value.message()


def test_tritonclient_several_typed_inputs_give_generates_digits(client, server):
    """``vae-sample-batch`` with INT64, FP32 and INT32 inputs: image i of seed s is
    ``/v1/generate``'s image i for seed s."""
    rows = 4
    columns = {
        "seeds": np.full(rows, 7, np.int64),
        "indices": np.arange(rows, dtype=np.int64),
        "temperatures": np.ones(rows, np.float32),
        "digits": np.full(rows, -1, np.int32),
    }
    types = {"seeds": "INT64", "indices": "INT64", "temperatures": "FP32", "digits": "INT32"}
    inputs = []
    for name, values in columns.items():
        tensor = triton.InferInput(name, [rows], types[name])
        tensor.set_data_from_numpy(values, binary_data=name != "digits")  # mixed, as allowed
        inputs.append(tensor)
    result = client.infer(
        "vae-sample-batch",
        inputs,
        outputs=[
            triton.InferRequestedOutput("latents", binary_data=False),
            triton.InferRequestedOutput("images"),
        ],
    )
    generated = httpx.post(f"http://{server}/v1/generate", json={"count": rows, "seed": 7}).json()
    np.testing.assert_allclose(
        result.as_numpy("latents"), generated["latents"], rtol=1e-5, atol=1e-5
    )
    assert result.as_numpy("images").shape == (rows, 28, 28)


def test_tritonclient_scalar_inputs_and_encode(client, server, mnist):
    digits = (mnist.x_test[:3].astype(np.float32) / 255).astype(np.float32)
    images = triton.InferInput("images", list(digits.shape), "FP32")
    images.set_data_from_numpy(digits)
    encoded = client.infer("vae-encode", [images])
    predicted = httpx.post(
        f"http://{server}/v1/models/vae:predict",
        json={"signature_name": "encode", "inputs": digits.tolist()},
    ).json()["outputs"]
    np.testing.assert_allclose(encoded.as_numpy("mu"), predicted["mu"], rtol=1e-4, atol=1e-5)
    samples = triton.InferInput("samples", [], "INT32")
    samples.set_data_from_numpy(np.array(8, np.int32))  # a scalar: shape []
    seed = triton.InferInput("seed", [1], "INT64")
    seed.set_data_from_numpy(np.array([3], np.int64))  # or shape [1]
    weights = client.infer("vae-log-weights", [images, samples, seed]).as_numpy("log_weights")
    assert weights.shape == (3, 8) and np.isfinite(weights).all()


def test_tritonclient_reads_the_errors(client):
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [z_input(CODES)])
    assert unknown.value.status() == "404" and "unknown model 'nope'" in unknown.value.message()
    wrong = triton.InferInput("z", [5, 20], "FP64")
    wrong.set_data_from_numpy(CODES.astype(np.float64))
    with pytest.raises(InferenceServerException) as bad:
        client.infer("vae", [wrong])
    assert bad.value.status() == "400" and "takes FP32" in bad.value.message()
    with pytest.raises(InferenceServerException) as unsupported:
        client.infer("vae", [z_input(CODES)], priority=1)
    assert "unknown parameter 'priority'" in unsupported.value.message()


# --- the KServe SDK -------------------------------------------------------------------------------
KSERVE_CASES = [(True, False), (False, False), (True, True)]  # binary inputs, binary outputs


def kserve_calls(url: str):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    async def calls():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            health = (
                await client.is_server_live(url),
                await client.is_server_ready(url),
                await client.is_model_ready(url, "vae"),
                await client.is_model_ready(url, "nope"),
            )
            answers = []
            for binary_in, binary_out in KSERVE_CASES:
                tensor = InferInput("z", list(CODES.shape), "FP32")
                tensor.set_data_from_numpy(CODES, binary_data=binary_in)
                request = InferRequest(
                    "vae",
                    [tensor],
                    request_id=f"kserve-{binary_in}-{binary_out}",
                    request_outputs=[RequestedOutput("images", {"binary_data": binary_out})],
                )
                answers.append(await client.infer(url, request, model_name="vae"))
            try:
                await client.infer(url, {"inputs": []}, model_name="vae")
                error = None
            except Exception as failure:  # noqa: BLE001 - httpx.HTTPStatusError
                error = failure
            return health, answers, error
        finally:
            await client.close()

    return asyncio.run(calls())


def test_the_kserve_sdk_rest_client_for_v2(client, server):
    health, answers, error = kserve_calls(f"http://{server}")
    assert health == (True, True, True, False)
    expected = client.infer("vae", [z_input(CODES)]).as_numpy("images")
    for response, (binary_in, binary_out) in zip(answers, KSERVE_CASES, strict=True):
        assert response.id == f"kserve-{binary_in}-{binary_out}"
        assert response.model_name == "vae"
        (output,) = response.outputs
        assert output.name == "images" and output.shape == [5, 28, 28]
        images = np.asarray(output.as_numpy(), np.float32).reshape(5, 28, 28)
        np.testing.assert_array_equal(images, expected)
    assert error is not None and "non-empty list of input tensors" in str(error)
    assert error.response.status_code == 400
