"""The API through real HTTP (FastAPI's TestClient) against a real trained SavedModel."""

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

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_client(model_dir, **settings) -> TestClient:
    return TestClient(create_app(Settings(model_dir=model_dir, **settings)))


@pytest.fixture(scope="module")
def client(model_dir):
    with make_client(model_dir, max_batch=64, max_upload_bytes=200_000,
                     max_image_pixels=1_000_000) as client:
        yield client


def png_of(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255


def b64_images(body) -> np.ndarray:
    return np.stack([decode_png(base64.b64decode(s)) for s in body["images"]])


def assert_error(response, status, *words):
    assert response.status_code == status, response.text
    text = response.text.lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in {response.text}"


# --- health, model info, docs ---------------------------------------------------------------


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_model_info_shows_shape_device_and_training_figures(client):
    info = client.get("/v1/model").json()
    assert info["name"] == "vae" and info["version"] == 1
    assert info["latent_dim"] == 20 and info["image_shape"] == [28, 28]
    assert info["device"] == "CPU"
    assert info["supports_digit"] is True
    assert info["metrics"]["test_neg_elbo"] > 0
    assert info["hyperparameters"]["latent_dim"] == 20


def test_openapi_documents_every_endpoint_with_examples_and_png(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/generate", "/v1/decode", "/v1/encode", "/v1/model", "/healthz", "/readyz"):
        assert path in spec["paths"]
    for path in ("/v1/generate", "/v1/decode"):
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        assert "image/png" in content and "application/json" in content
    schemas = spec["components"]["schemas"]
    assert schemas["GenerateRequest"]["examples"] and schemas["DecodeRequest"]["examples"]
    assert client.get("/docs").status_code == 200


def test_metrics_count_requests(client):
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'vae_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "vae_model_ready 1.0" in text


# --- generate --------------------------------------------------------------------------------


def test_generate_defaults_to_one_digit_with_a_returned_seed(client):
    body = client.post("/v1/generate", json={}).json()
    assert len(body["images"]) == 1 and len(body["latents"]) == 1
    assert len(body["latents"][0]) == 20 and isinstance(body["seed"], int)
    image = b64_images(body)[0]
    assert image.shape == (28, 28)
    # The returned seed reproduces the digit.
    again = client.post("/v1/generate", json={"seed": body["seed"]}).json()
    assert again["images"] == body["images"]


def test_same_seed_same_digits_other_seed_other_digits(client):
    first = client.post("/v1/generate", json={"count": 4, "seed": 42}).json()
    second = client.post("/v1/generate", json={"count": 4, "seed": 42}).json()
    other = client.post("/v1/generate", json={"count": 4, "seed": 43}).json()
    assert first == second
    assert first["images"] != other["images"]
    assert len(first["images"]) == 4


def test_temperature_zero_gives_mixture_modes_and_digit_gives_that_digit(client, classifier):
    from training.classifier import classify

    body = client.post("/v1/generate", json={"count": 32, "digit": 3, "seed": 1,
                                             "temperature": 0.5}).json()
    assert body["digit"] == 3
    probs, _ = classify(classifier, b64_images(body))
    assert np.mean(probs.argmax(1) == 3) >= 0.8
    cold = client.post("/v1/generate", json={"count": 2, "temperature": 0}).json()
    assert len(cold["images"]) == 2


def test_generate_png_single_and_grid(client):
    one = client.post("/v1/generate", json={"seed": 5}, headers={"Accept": "image/png"})
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    assert one.content.startswith(PNG_MAGIC) and one.headers["x-seed"] == "5"
    assert Image.open(io.BytesIO(one.content)).size == (28, 28)
    # Same digit as the JSON answer for the same seed.
    as_json = client.post("/v1/generate", json={"seed": 5}).json()
    np.testing.assert_array_equal(decode_png(one.content), b64_images(as_json)[0])

    grid = client.post("/v1/generate?nrow=5&scale=2", json={"count": 10, "seed": 5},
                       headers={"Accept": "image/png"})
    width, height = Image.open(io.BytesIO(grid.content)).size
    assert width > height > 28 * 2


@pytest.mark.parametrize(
    "accept, expected",
    [
        ("image/png", "image/png"),
        ("image/*", "image/png"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("image/png;q=0.5, application/json", "application/json"),
        ("application/json;q=0.2, image/png", "image/png"),
    ],
)
def test_content_negotiation(client, accept, expected):
    response = client.post("/v1/generate", json={"seed": 1}, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(expected)


def test_unacceptable_accept_is_406(client):
    assert_error(client.post("/v1/generate", json={}, headers={"Accept": "text/html"}), 406,
                 "image/png")


# --- decode ----------------------------------------------------------------------------------


def test_decode_json_and_png(client):
    codes = np.random.default_rng(0).normal(size=(3, 20)).tolist()
    body = client.post("/v1/decode", json={"latents": codes}).json()
    assert b64_images(body).shape == (3, 28, 28)
    png = client.post("/v1/decode", json={"latents": codes[:1]}, headers={"Accept": "image/png"})
    np.testing.assert_array_equal(decode_png(png.content), b64_images(body)[0])


def test_generate_latents_decode_to_the_same_images(client):
    generated = client.post("/v1/generate", json={"count": 3, "seed": 9}).json()
    decoded = client.post("/v1/decode", json={"latents": generated["latents"]}).json()
    assert np.abs(b64_images(decoded) - b64_images(generated)).max() <= 1 / 255 + 1e-6


# --- encode ----------------------------------------------------------------------------------


def test_encode_then_decode_keeps_the_digit(client, mnist, classifier):
    from training.classifier import classify

    digits = mnist.x_test[:20].astype(np.float32) / 255
    files = [("file", (f"digit{i}.png", png_of(d), "image/png")) for i, d in enumerate(digits)]
    body = client.post("/v1/encode", files=files).json()
    mu = np.array(body["mu"])
    assert mu.shape == (20, 20)
    assert np.array(body["sigma"]).shape == (20, 20)
    np.testing.assert_allclose(np.exp(0.5 * np.array(body["log_var"])), body["sigma"], rtol=1e-4)
    decoded = b64_images(client.post("/v1/decode", json={"latents": body["mu"]}).json())
    probs, _ = classify(classifier, decoded)
    kept = np.mean(probs.argmax(1) == mnist.y_test[:20])
    assert kept >= 0.8, f"only {kept:.0%} of round trips kept their digit"


def test_encode_keeps_file_order(client, mnist):
    a, b = (mnist.x_test[i].astype(np.float32) / 255 for i in (0, 1))
    both = client.post("/v1/encode", files=[("file", ("a.png", png_of(a))),
                                            ("file", ("b.png", png_of(b)))]).json()
    only_b = client.post("/v1/encode", files=[("file", ("b.png", png_of(b)))]).json()
    np.testing.assert_allclose(both["mu"][1], only_b["mu"][0], atol=1e-5)


def test_encode_accepts_a_dark_on_light_photo_like_jpeg(client, mnist):
    digit = mnist.x_test[0]
    scan = Image.fromarray(255 - digit).resize((200, 200)).convert("RGB")
    buffer = io.BytesIO()
    scan.save(buffer, "JPEG")
    body = client.post("/v1/encode", files={"file": ("scan.jpg", buffer.getvalue())}).json()
    assert len(body["mu"]) == 1


# --- bad input: clear 4xx, never 5xx, and the service keeps serving ---------------------------

BAD_JSON = [
    ("/v1/decode", '{"latents": [[NaN' + ", 0" * 19 + "]]}", "finite"),
    ("/v1/decode", '{"latents": [[Infinity' + ", 0" * 19 + "]]}", "finite"),
    ("/v1/decode", '{"latents": [[1e400' + ", 0" * 19 + "]]}", "finite"),
    ("/v1/decode", '{"latents": [[1e5' + ", 0" * 19 + "]]}", "less than or equal"),
    ("/v1/decode", '{"latents": []}', "at least 1"),
    ("/v1/decode", '{"latents": [["a"' + ", 0" * 19 + "]]}", "number"),
    ("/v1/decode", '{"latents": [[0, 0]]}', "latent code has 2 numbers"),
    ("/v1/decode", '{"latents": "zeros"}', "list"),
    ("/v1/decode", "{not json", "json"),
    ("/v1/decode", "{}", "latents"),
    ("/v1/generate", '{"count": 0}', "count"),
    ("/v1/generate", '{"count": 65}', "at most 64"),
    ("/v1/generate", '{"count": "many"}', "count"),
    ("/v1/generate", '{"seed": -1}', "seed"),
    ("/v1/generate", '{"temperature": NaN}', "temperature"),
    ("/v1/generate", '{"digit": 10}', "digit"),
    ("/v1/generate", '{"colour": "red"}', "colour"),
]


@pytest.mark.parametrize("path, raw, words", BAD_JSON)
def test_bad_json_is_422_naming_the_problem(client, path, raw, words):
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 422, words)


def test_too_many_latents_is_422(client):
    response = client.post("/v1/decode", json={"latents": [[0.0] * 20] * 65})
    assert_error(response, 422, "at most 64")


def test_encode_errors(client, mnist):
    good = png_of(mnist.x_test[0] / 255)
    assert_error(client.post("/v1/encode", files={}), 422, "file")
    assert_error(client.post("/v1/encode", data={"other": "x"}), 422, "file")
    assert_error(client.post("/v1/encode", files={"file": ("notes.txt", b"hello")}), 415,
                 "notes.txt")
    assert_error(client.post("/v1/encode", files={"file": ("cut.png", good[:60])}), 422, "cut.png")
    big = Image.new("1", (1500, 1500))  # 2.25 MP > the 1 MP limit, yet a tiny file
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    assert_error(client.post("/v1/encode", files={"file": ("bomb.png", buffer.getvalue())}), 413)
    too_many = [("file", (f"{i}.png", good)) for i in range(65)]
    assert_error(client.post("/v1/encode", files=too_many), 422, "at most 64")


def test_body_over_the_limit_is_413_before_parsing(client):
    payload = b"\0" * 300_000
    response = client.post("/v1/encode", files={"file": ("huge.png", payload)})
    assert_error(response, 413, "VAE_MAX_UPLOAD_BYTES")
    response = client.post("/v1/decode", content=b"[" * 300_000,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_service_keeps_serving_after_bad_input(client):
    assert client.post("/v1/generate", json={"seed": 3}).status_code == 200
    assert client.get("/readyz").status_code == 200


# --- concurrency, missing model, model without digits -------------------------------------


def test_concurrent_requests_are_correct(client):
    def generate(seed):
        return client.post("/v1/generate", json={"count": 2, "seed": seed}).json()["images"]

    expected = {seed: generate(seed) for seed in range(8)}
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(generate, [s % 8 for s in range(64)]))
    for i, images in enumerate(results):
        assert images == expected[i % 8]


def test_no_model_readyz_503_says_how_to_train(tmp_path):
    with make_client(tmp_path / "empty", model_poll_seconds=0.2) as client:
        assert client.get("/healthz").status_code == 200
        assert_error(client.get("/readyz"), 503, "make train")
        assert_error(client.post("/v1/generate", json={}), 503, "not ready")
        assert_error(client.get("/v1/model"), 503)


def test_model_appearing_later_is_picked_up(tmp_path, version_dir):
    import shutil
    import time

    with make_client(tmp_path, model_poll_seconds=0.2) as client:
        assert client.get("/readyz").status_code == 503
        shutil.copytree(version_dir, tmp_path / "vae" / "1")
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.post("/v1/generate", json={}).status_code == 200


def test_model_without_digit_prior_refuses_digit_clearly(model_dir_without_digits):
    with make_client(model_dir_without_digits) as client:
        assert client.get("/v1/model").json()["supports_digit"] is False
        assert client.post("/v1/generate", json={"count": 2}).status_code == 200
        assert_error(client.post("/v1/generate", json={"digit": 4}), 422,
                     "cannot generate a chosen digit")


def test_unknown_version_is_not_ready_with_the_versions_found(model_dir):
    with make_client(model_dir, model_version=7) as client:
        assert_error(client.get("/readyz"), 503, "version 7", "[1]")


def test_streamed_body_without_length_is_cut_at_the_limit(client):
    def chunks():
        for _ in range(40):
            yield b"[" * 10_000

    response = client.post("/v1/decode", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert_error(response, 413, "VAE_MAX_UPLOAD_BYTES")
