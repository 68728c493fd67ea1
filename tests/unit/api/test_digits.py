"""Fast tier: the HTTP API's routing, validation and answers, on a NumPy stand-in model
(``tests/support/fakes.py``), without TensorFlow. The same behaviours on a real trained model are
checked end to end in ``test_app.py``."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app
from tests.support.fakes import FakeLoader, make_versions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_client(model_dir, **settings) -> TestClient:
    settings.setdefault("model_poll_seconds", 0)
    app = create_app(Settings(model_dir=model_dir, **settings), FakeLoader())
    return TestClient(app)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    model_dir = make_versions(tmp_path_factory.mktemp("models"), 1)
    with fake_client(
        model_dir,
        max_batch=64,
        max_upload_bytes=200_000,
        max_json_bytes=100_000,
        max_image_pixels=1_000_000,
    ) as client:
        yield client


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    for word in words:
        assert word.lower() in response.text.lower(), f"{word!r} not in {response.text}"


# --- answers ----------------------------------------------------------------------------------


def test_generate_json_has_codes_seed_and_pngs(client):
    body = client.post("/v1/generate", json={"count": 3, "seed": 7}).json()
    assert body["seed"] == 7 and body["digit"] is None
    assert np.array(body["latents"]).shape == (3, 20)
    pictures = [decode_png(base64.b64decode(s)) for s in body["images"]]
    assert all(p.shape == (28, 28) and p.dtype == np.uint8 for p in pictures)


def test_same_seed_same_answer_and_a_drawn_seed_is_returned(client):
    first = client.post("/v1/generate", json={"count": 2, "seed": 3}).json()
    assert client.post("/v1/generate", json={"count": 2, "seed": 3}).json() == first
    drawn = client.post("/v1/generate", json={}).json()
    again = client.post("/v1/generate", json={"seed": drawn["seed"]}).json()
    assert again["images"] == drawn["images"]


@pytest.mark.parametrize(
    "accept, media_type",
    [
        ("image/png", "image/png"),
        ("image/*", "image/png"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("application/x-npy", "application/x-npy"),
        ("application/octet-stream", "application/octet-stream"),
        ("image/png;q=0.5, application/json", "application/json"),
    ],
)
def test_content_negotiation(client, accept, media_type):
    response = client.post("/v1/generate", json={"seed": 1}, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)


def test_every_answer_format_holds_the_same_pixels(client):
    request = {"count": 4, "seed": 11}
    as_json = client.post("/v1/generate", json=request).json()
    pixels = np.stack([decode_png(base64.b64decode(s)) for s in as_json["images"]])
    npy = client.post("/v1/generate", json=request, headers={"Accept": "application/x-npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content)), pixels)
    raw = client.post("/v1/generate", json=request, headers={"Accept": "application/octet-stream"})
    assert raw.headers["x-shape"] == "4,28,28" and raw.headers["x-dtype"] == "uint8"
    np.testing.assert_array_equal(np.frombuffer(raw.content, np.uint8).reshape(4, 28, 28), pixels)
    one = client.post("/v1/generate", json={"seed": 11}, headers={"Accept": "image/png"})
    assert one.content.startswith(PNG_MAGIC) and one.headers["x-seed"] == "11"
    np.testing.assert_array_equal(decode_png(one.content), pixels[0])


def test_png_grid_layout(client):
    grid = client.post(
        "/v1/decode?nrow=2&scale=2",
        json={"latents": [[0.0] * 20] * 4},
        headers={"Accept": "image/png"},
    )
    assert decode_png(grid.content).shape == (2 * (2 * 30 + 2), 2 * (2 * 30 + 2))


def test_encode_returns_mu_sigma_and_log_var_per_file_in_order(client):
    files = [("file", (f"{i}.png", png_bytes(Image.new("L", (30, 30), 40 * i)))) for i in range(3)]
    body = client.post("/v1/encode", files=files).json()
    assert {k: np.array(v).shape for k, v in body.items()} == {
        "mu": (3, 20),
        "sigma": (3, 20),
        "log_var": (3, 20),
    }


# --- validation -------------------------------------------------------------------------------

BAD_JSON = [
    ("/v1/decode", '{"latents": [[NaN' + ", 0" * 19 + "]]}", "finite"),
    ("/v1/decode", '{"latents": [[Infinity' + ", 0" * 19 + "]]}", "finite"),
    ("/v1/decode", '{"latents": [[1e400' + ", 0" * 19 + "]]}", "finite"),
    ("/v1/decode", '{"latents": [[1e5' + ", 0" * 19 + "]]}", "less than or equal"),
    ("/v1/decode", '{"latents": [[true' + ", 0" * 19 + "]]}", "number"),
    ("/v1/decode", '{"latents": []}', "at least 1"),
    ("/v1/decode", '{"latents": [["a"' + ", 0" * 19 + "]]}", "number"),
    ("/v1/decode", '{"latents": [[0, 0]]}', "latent code has 2 numbers"),
    ("/v1/decode", '{"latents": "zeros"}', "list"),
    ("/v1/decode", "{not json", "json"),
    ("/v1/decode", "{}", "latents"),
    ("/v1/generate", '{"count": 0}', "count"),
    ("/v1/generate", '{"count": 65}', "VAE_MAX_BATCH"),
    ("/v1/generate", '{"count": true}', "integer"),
    ("/v1/generate", '{"count": 2.0}', "integer"),
    ("/v1/generate", '{"count": "2"}', "integer"),
    ("/v1/generate", '{"seed": -1}', "seed"),
    ("/v1/generate", '{"temperature": NaN}', "temperature"),
    ("/v1/generate", '{"temperature": false}', "number"),
    ("/v1/generate", '{"digit": 10}', "digit"),
    ("/v1/generate", '{"colour": "red"}', "colour"),
    ("/v1/generate", "[]", "object"),
]


@pytest.mark.parametrize("path, raw, words", BAD_JSON)
def test_bad_json_is_422_naming_the_problem(client, path, raw, words):
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 422, words)


def test_unacceptable_accept_is_406(client):
    assert_error(
        client.post("/v1/generate", json={}, headers={"Accept": "text/html"}), 406, "image/png"
    )


def test_a_png_too_large_to_render_is_refused(tmp_path):
    with fake_client(make_versions(tmp_path, 1), max_output_pixels=100_000) as client:
        response = client.post(
            "/v1/generate?scale=16", json={"count": 2}, headers={"Accept": "image/png"}
        )
        assert_error(response, 422, "VAE_MAX_OUTPUT_PIXELS")
        assert client.post("/v1/generate?scale=16", json={"count": 2}).status_code == 200


def test_trailing_slash_is_not_redirected(client):
    response = client.post(
        "/v1/generate/", json={}, headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404 and "location" not in response.headers


def test_body_over_the_limit_is_413_and_closes_the_connection(client):
    response = client.post(
        "/v1/decode", content=b"[" * 300_000, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "VAE_MAX_JSON_BYTES")
    assert response.headers["connection"] == "close"

    def chunks():
        for _ in range(40):
            yield b"[" * 10_000

    streamed = client.post(
        "/v1/decode", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(streamed, 413, "VAE_MAX_JSON_BYTES")
    assert streamed.headers["connection"] == "close"


def test_upload_over_the_limit_is_413(client):
    response = client.post("/v1/encode", files={"file": ("huge.png", b"\0" * 300_000)})
    assert_error(response, 413, "VAE_MAX_UPLOAD_BYTES")


def test_multipart_abuse_is_4xx(client):
    assert_error(client.post("/v1/encode", files={}), 422, "file")
    assert_error(client.post("/v1/encode", data={"other": "x"}), 422, "file")
    many = [("file", (f"{i}.png", b"x")) for i in range(1000)]
    assert client.post("/v1/encode", files=many).status_code in (400, 413, 422)
    unterminated = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nab'
    response = client.post(
        "/v1/encode",
        content=unterminated,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert 400 <= response.status_code < 500


# --- model info, health, docs -----------------------------------------------------------------


def test_model_info_shows_every_metadata_field_and_no_server_path(client, tmp_path_factory):
    info = client.get("/v1/model").json()
    assert info["version"] == 1 and info["latent_dim"] == 20 and info["device"] == "CPU"
    assert info["preset"] == "fake" and info["metrics"]["test_neg_elbo"] == 100.0
    assert info["versions"] == [
        {"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}
    ]
    assert info["settings"]["VAE_MAX_BATCH"] == 64
    assert "/tmp" not in client.get("/v1/model").text
    documented = client.get("/openapi.json").json()["components"]["schemas"]["ModelInfo"]
    assert set(info) <= set(documented["properties"])


def test_health_never_waits_for_the_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "version": 1, "device": "CPU"}


def test_metrics_count_requests_and_admission(client):
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'vae_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "vae_model_ready 1.0" in text and "vae_admitted_rows_limit" in text


def test_openapi_documents_every_route_with_examples_and_binary_answers(client):
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/generate",
        "/v1/decode",
        "/v1/encode",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/v1/models/{model_name}",
        "/v1/models/{model_name}:predict",
        "/v1/models/{model_name}/metadata",
    ):
        assert path in spec["paths"], path
    for path in ("/v1/generate", "/v1/decode"):
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        assert {"image/png", "application/json", "application/x-npy"} <= set(content)
    schemas = spec["components"]["schemas"]
    assert schemas["GenerateRequest"]["examples"] and schemas["DecodeRequest"]["examples"]


def test_no_model_is_live_but_not_ready_and_says_how_to_train(tmp_path):
    with fake_client(tmp_path) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert_error(ready, 503, "make train", "VAE_MODEL_DIR")
        assert str(tmp_path) not in ready.text
        assert_error(client.post("/v1/generate", json={}), 503, "not ready")
        assert client.post("/v1/generate", json={}).headers["retry-after"]
