"""End to end through the app (FastAPI's TestClient) on a real trained SavedModel: the digits
are real digits, seeds reproduce them, encode -> decode keeps them, and TensorFlow Serving's
predict answers what the service's own endpoints answer. Routing and validation in detail
are the fast tier's (``test_api.py``, ``test_tfserving.py``)."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app


def make_client(model_dir, **settings) -> TestClient:
    settings.setdefault("model_poll_seconds", 0)
    return TestClient(create_app(Settings(model_dir=model_dir, **settings)))


@pytest.fixture(scope="module")
def client(model_dir):
    with make_client(
        model_dir, max_batch=64, max_upload_bytes=200_000, max_image_pixels=1_000_000
    ) as client:
        yield client


def png_of(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255


def b64_images(body) -> np.ndarray:
    return np.stack([decode_png(base64.b64decode(s)) for s in body["images"]])


def test_model_info_describes_the_real_export(client):
    info = client.get("/v1/model").json()
    assert info["name"] == "vae" and info["version"] == 1
    assert info["latent_dim"] == 20 and info["image_shape"] == [28, 28]
    assert info["device"] == "CPU" and info["supports_digit"] is True
    assert info["metrics"]["test_neg_elbo"] > 0
    assert info["hyperparameters"]["latent_dim"] == 20
    assert {"decode", "encode", "sample_batch", "log_weights"} <= set(info["signatures"])
    assert client.get("/readyz").json() == {"status": "ready", "version": 1, "device": "CPU"}


def test_same_seed_same_digits_other_seed_other_digits(client):
    first = client.post("/v1/generate", json={"count": 4, "seed": 42}).json()
    assert client.post("/v1/generate", json={"count": 4, "seed": 42}).json() == first
    other = client.post("/v1/generate", json={"count": 4, "seed": 43}).json()
    assert first["images"] != other["images"]


def test_a_chosen_digit_is_that_digit(client, classifier):
    from training.classifier import classify

    body = client.post(
        "/v1/generate", json={"count": 32, "digit": 3, "seed": 1, "temperature": 0.5}
    ).json()
    probs, _ = classify(classifier, b64_images(body))
    assert np.mean(probs.argmax(1) == 3) >= 0.8


def test_png_json_and_npy_answers_hold_the_same_digit(client):
    as_json = b64_images(client.post("/v1/generate", json={"seed": 5}).json())[0]
    png = client.post("/v1/generate", json={"seed": 5}, headers={"Accept": "image/png"})
    np.testing.assert_array_equal(decode_png(png.content), as_json)
    npy = client.post("/v1/generate", json={"seed": 5}, headers={"Accept": "application/x-npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content))[0], np.round(as_json * 255))


def test_generated_codes_decode_to_the_same_images(client):
    generated = client.post("/v1/generate", json={"count": 3, "seed": 9}).json()
    decoded = client.post("/v1/decode", json={"latents": generated["latents"]}).json()
    assert np.abs(b64_images(decoded) - b64_images(generated)).max() <= 1 / 255 + 1e-6


def test_encode_then_decode_keeps_the_digit(client, mnist, classifier):
    from training.classifier import classify

    digits = mnist.x_test[:20].astype(np.float32) / 255
    files = [("file", (f"digit{i}.png", png_of(d), "image/png")) for i, d in enumerate(digits)]
    body = client.post("/v1/encode", files=files).json()
    assert np.array(body["mu"]).shape == (20, 20)
    np.testing.assert_allclose(np.exp(0.5 * np.array(body["log_var"])), body["sigma"], rtol=1e-4)
    decoded = b64_images(client.post("/v1/decode", json={"latents": body["mu"]}).json())
    probs, _ = classify(classifier, decoded)
    kept = np.mean(probs.argmax(1) == mnist.y_test[:20])
    assert kept >= 0.8, f"only {kept:.0%} of round trips kept their digit"


def test_a_dark_on_light_photo_encodes_like_the_mnist_digit(client, mnist):
    digit = mnist.x_test[0]
    scan = Image.fromarray(255 - digit).resize((200, 200)).convert("RGB")
    buffer = io.BytesIO()
    scan.save(buffer, "JPEG")
    photo = client.post("/v1/encode", files={"file": ("scan.jpg", buffer.getvalue())}).json()
    original = client.post("/v1/encode", files={"file": ("d.png", png_of(digit / 255))}).json()
    assert np.linalg.norm(np.subtract(photo["mu"], original["mu"])) < 3.0


def test_tf_serving_predict_answers_what_decode_answers(client):
    codes = np.random.default_rng(0).normal(size=(3, 20)).tolist()
    predicted = client.post("/v1/models/vae:predict", json={"instances": codes}).json()
    decoded = b64_images(client.post("/v1/decode", json={"latents": codes}).json())
    pixels = np.round(np.array(predicted["predictions"]) * 255) / 255
    np.testing.assert_allclose(pixels, decoded, atol=1 / 255 + 1e-6)


def test_tf_serving_sample_batch_rows_equal_generate(client):
    generated = client.post("/v1/generate", json={"count": 2, "seed": 7, "digit": 4}).json()
    predicted = client.post(
        "/v1/models/vae:predict",
        json={
            "signature_name": "sample_batch",
            "inputs": {
                "seeds": [7, 7],
                "indices": [0, 1],
                "temperatures": [1.0, 1.0],
                "digits": [4, 4],
            },
        },
    ).json()
    np.testing.assert_allclose(
        predicted["outputs"]["latents"], generated["latents"], rtol=1e-5, atol=1e-6
    )


def test_tf_serving_metadata_is_read_from_the_savedmodel(client):
    signatures = client.get("/v1/models/vae/metadata").json()["metadata"]["signature_def"][
        "signature_def"
    ]
    decode = signatures["serving_default"]
    assert decode["method_name"] == "tensorflow/serving/predict"
    assert decode["inputs"]["z"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in decode["inputs"]["z"]["tensor_shape"]["dim"]] == ["-1", "20"]


def test_concurrent_requests_are_correct(client):
    def generate(seed):
        return client.post("/v1/generate", json={"count": 2, "seed": seed}).json()["images"]

    expected = {seed: generate(seed) for seed in range(8)}
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(generate, [s % 8 for s in range(64)]))
    for i, images in enumerate(results):
        assert images == expected[i % 8]


def test_a_model_appearing_later_is_picked_up(tmp_path, version_dir):
    import shutil
    import time

    with make_client(tmp_path, model_poll_seconds=0.2) as client:
        assert client.get("/readyz").status_code == 503
        shutil.copytree(version_dir, tmp_path / "vae" / "1")
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.post("/v1/generate", json={}).status_code == 200


def test_a_model_without_digit_prior_refuses_digit_clearly(model_dir_without_digits):
    with make_client(model_dir_without_digits) as client:
        assert client.get("/v1/model").json()["supports_digit"] is False
        assert client.post("/v1/generate", json={"count": 2}).status_code == 200
        response = client.post("/v1/generate", json={"digit": 4})
        assert response.status_code == 422 and "cannot generate a chosen digit" in response.text
