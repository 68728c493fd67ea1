"""Fast tier: the latent explorer's endpoints (reconstruct, interpolate, traverse, score, the
report pictures) and their maths, on the NumPy stand-in model (``tests/support/fakes.py``)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app.api import latent
from app.config import Settings
from app.main import create_app
from app.media import pictures, preprocess
from tests.support.fakes import SCORE_REFERENCE, FakeLoader, FakeModel, make_versions
from vae_contract import ScoreReference

D = 20


def fake_client(model_dir, loader=None, **settings) -> TestClient:
    settings.setdefault("model_poll_seconds", 0)
    return TestClient(create_app(Settings(model_dir=model_dir, **settings), loader or FakeLoader()))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_versions(tmp_path_factory.mktemp("models"), 1)


@pytest.fixture(scope="module")
def client(model_dir):
    with fake_client(model_dir, max_batch=16, max_steps=32) as client:
        yield client


@pytest.fixture(scope="module")
def plain_client(tmp_path_factory):
    """A version exported without latent_axes and score_reference."""
    model_dir = make_versions(tmp_path_factory.mktemp("plain"), 1)
    loader = FakeLoader(metadata_changes={"latent_axes": None, "score_reference": None})
    with fake_client(model_dir, loader) as client:
        yield client


def drawing(shape: str = "seven") -> bytes:
    """A dark digit on white paper, as a phone photo or a canvas would give."""
    picture = Image.new("L", (120, 160), 255)
    pen = ImageDraw.Draw(picture)
    if shape == "seven":
        pen.line([(20, 20), (100, 20), (50, 140)], fill=0, width=12)
    else:
        pen.ellipse([25, 25, 95, 135], outline=0, width=12)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def pixels(base64_png: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(base64_png))))


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    for word in words:
        assert word.lower() in response.text.lower(), f"{word!r} not in {response.text}"


def reference() -> ScoreReference:
    return ScoreReference(**SCORE_REFERENCE)


def expected_score(batch: np.ndarray) -> np.ndarray:
    """The fake's log_weights of each image alone with the reference's samples and seed,
    log-mean-exp'd."""
    weights = np.concatenate(
        [
            FakeModel()
            .call(
                "log_weights",
                {
                    "images": image[None],
                    "samples": np.array(SCORE_REFERENCE["samples"]),
                    "seed": np.array(SCORE_REFERENCE["seed"]),
                },
            )["log_weights"]
            .astype(np.float64)
            for image in batch
        ]
    )
    return np.log(np.mean(np.exp(weights), axis=1))


# --- the maths ----------------------------------------------------------------------------------


def test_linear_interpolation_is_evenly_spaced_from_end_to_end():
    a, b = np.zeros(D), np.arange(D, dtype=float)
    path = latent.interpolate(a, b, 5, "linear")
    assert path.shape == (5, D)
    np.testing.assert_allclose(path[0], a)
    np.testing.assert_allclose(path[-1], b)
    np.testing.assert_allclose(np.diff(path, axis=0), np.tile(b / 4, (4, 1)), rtol=1e-6)


def test_spherical_interpolation_keeps_the_norm_between_codes_of_equal_norm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=D), rng.normal(size=D)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    path = latent.interpolate(a, b, 9, "spherical")
    np.testing.assert_allclose(path[0], a, rtol=1e-6)
    np.testing.assert_allclose(path[-1], b, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    # A straight line would pass closer to the origin.
    assert np.linalg.norm(path[4]) > np.linalg.norm((a + b) / 2) * 1.05


def test_spherical_interpolation_of_parallel_codes_is_the_straight_line():
    a = np.ones(D)
    np.testing.assert_allclose(
        latent.interpolate(a, 3 * a, 3, "spherical"), latent.interpolate(a, 3 * a, 3, "linear")
    )


def test_the_iwae_estimate_is_stable_and_matches_the_direct_formula():
    from vae_contract import iwae_estimate

    expected = -1000 + np.log(np.mean(np.exp([0.0, -1.0, -2.0])))
    assert iwae_estimate([-1000.0, -1001.0, -1002.0]) == pytest.approx(expected)
    assert iwae_estimate([0.0, 1.0, 2.0]) == pytest.approx(np.log(np.mean(np.exp([0, 1, 2]))))


def test_percentile_places_a_score_among_thereference():
    from vae_contract import ScoreReference

    reference = ScoreReference(
        samples=1, seed=0, examples=10, percentiles=list(np.linspace(-200, -100, 101))
    )
    placed = [latent.percentile(s, reference) for s in (-250.0, -150.0, -125.5, 0.0)]
    assert placed == [0.0, 50.0, 74.5, 100.0]
    assert latent.percentile(-150.0, None) is None
    assert latent.percentile(float("nan"), reference) is None


# --- reconstruct --------------------------------------------------------------------------------


def test_reconstruct_shows_each_step_of_an_upload(client):
    upload = drawing()
    answer = client.post("/v1/reconstruct", files=[("file", ("seven.png", upload))])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    seen = preprocess.load_upload(upload, 10**7)
    np.testing.assert_array_equal(pixels(body["inputs"][0]), pictures.to_pixels(seen))
    encoded = client.post("/v1/encode", files=[("file", ("seven.png", upload))]).json()
    assert body["mu"] == encoded["mu"] and body["sigma"] == encoded["sigma"]
    decoded = client.post("/v1/decode", json={"latents": body["mu"]}).json()
    assert body["reconstructions"] == decoded["images"]
    np.testing.assert_allclose(body["log_px"], expected_score(seen[None]), atol=1e-3)
    assert body["percentile"] == [latent.percentile(v, reference()) for v in body["log_px"]]


def test_reconstruct_answers_one_png_of_inputs_over_reconstructions(client):
    files = [("file", ("a.png", drawing())), ("file", ("b.png", drawing("zero")))]
    answer = client.post("/v1/reconstruct?scale=2", files=files, headers={"Accept": "image/png"})
    assert answer.headers["content-type"] == "image/png"
    grid = np.asarray(Image.open(io.BytesIO(answer.content)))
    side = (2 * (28 + 2) + 2) * 2  # two rows, two columns, 2-pixel padding, scale 2
    assert grid.shape == (side, side)


def test_reconstruct_refuses_more_images_than_it_may_score(model_dir):
    with fake_client(model_dir, max_score_samples=40) as small:  # 16 samples each: 2 images
        files = [("file", (f"{i}.png", drawing())) for i in range(3)]
        assert_error(
            small.post("/v1/reconstruct", files=files),
            422,
            "at most 2 images",
            "VAE_MAX_SCORE_SAMPLES",
        )
        assert small.post("/v1/reconstruct", files=files[:2]).status_code == 200


@pytest.mark.parametrize(
    "files, status, words",
    [
        ([], 422, ["file"]),
        ([("file", ("notes.txt", b"hello"))], 415, ["notes.txt"]),
        ([("file", ("broken.png", drawing()[:60]))], 422, ["broken.png", "corrupt"]),
    ],
)
def test_reconstruct_names_the_bad_upload(client, files, status, words):
    if not files:
        response = client.post("/v1/reconstruct", data={"other": "x"})
    else:
        response = client.post("/v1/reconstruct", files=files)
    assert_error(response, status, *words)


def test_reconstruct_refuses_an_accept_it_cannot_answer(client):
    response = client.post(
        "/v1/reconstruct",
        files=[("file", ("a.png", drawing()))],
        headers={"Accept": "application/x-npy"},
    )
    assert_error(response, 406, "image/png")


# --- interpolate --------------------------------------------------------------------------------


def test_interpolating_codes_decodes_the_straight_path(client):
    a, b = [-1.0] * D, [1.0] * D
    body = client.post("/v1/interpolate", json={"latents": [a, b], "steps": 5}).json()
    assert body["method"] == "linear"
    np.testing.assert_allclose(
        body["latents"], latent.interpolate(np.array(a), np.array(b), 5, "linear")
    )
    decoded = client.post("/v1/decode", json={"latents": body["latents"]}).json()
    assert body["images"] == decoded["images"]


def test_interpolating_seeds_starts_and_ends_at_their_generated_digits(client):
    body = client.post(
        "/v1/interpolate",
        json={"seeds": [4, 9], "digits": [3, None], "temperature": 0.5, "steps": 6},
    ).json()
    assert body["method"] == "spherical"
    first = client.post("/v1/generate", json={"seed": 4, "digit": 3, "temperature": 0.5}).json()
    last = client.post("/v1/generate", json={"seed": 9, "temperature": 0.5}).json()
    np.testing.assert_allclose(body["latents"][0], first["latents"][0], rtol=1e-5)
    np.testing.assert_allclose(body["latents"][-1], last["latents"][0], rtol=1e-5)
    assert body["images"][0] == first["images"][0]


def test_interpolating_two_uploads_walks_between_their_codes(client):
    files = [("file", ("a.png", drawing())), ("file", ("b.png", drawing("zero")))]
    body = client.post(
        "/v1/interpolate", files=files, data={"steps": "4", "method": "spherical"}
    ).json()
    mu = client.post("/v1/encode", files=files).json()["mu"]
    assert body["method"] == "spherical" and len(body["images"]) == 4
    np.testing.assert_allclose([body["latents"][0], body["latents"][-1]], mu, rtol=1e-5)


def test_an_interpolation_png_is_one_strip(client):
    answer = client.post(
        "/v1/interpolate", json={"seeds": [1, 2], "steps": 7}, headers={"Accept": "image/png"}
    )
    strip = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert strip.shape == (28 + 4, 7 * 30 + 2)


@pytest.mark.parametrize(
    "body, words",
    [
        ({"seeds": [1, 2], "latents": [[0.0] * D, [0.0] * D]}, ["either latents", "or seeds"]),
        ({"steps": 4}, ["either latents"]),
        ({"seeds": [1]}, ["seeds"]),
        ({"latents": [[0.0] * D, [0.0] * 3]}, ["latents", "needs 20"]),
        ({"seeds": [1, 2], "steps": 1}, ["steps"]),
        ({"seeds": [1, 2], "steps": 33}, ["VAE_MAX_STEPS"]),
        ({"seeds": [1, 2], "method": "cubic"}, ["method"]),
        ({"seeds": [1, 2], "digits": [10, 1]}, ["digits"]),
        ({"latents": [[0.0] * D, [0.0] * D], "digits": [1, 2]}, ["digits go with seeds"]),
        ({"seeds": ["1", 2]}, ["seeds"]),
    ],
)
def test_a_bad_interpolation_is_a_422_naming_the_field(client, body, words):
    assert_error(client.post("/v1/interpolate", json=body), 422, *words)


def test_interpolation_refuses_bad_bodies_clearly(client):
    assert_error(
        client.post("/v1/interpolate", content=b"{", headers={"Content-Type": "application/json"}),
        422,
        "json",
    )
    assert_error(
        client.post(
            "/v1/interpolate",
            content=b'{"latents": [[NaN]]}',
            headers={"Content-Type": "application/json"},
        ),
        422,
    )
    assert_error(
        client.post(
            "/v1/interpolate", content=b"seeds=1,2", headers={"Content-Type": "text/plain"}
        ),
        415,
        "multipart/form-data",
    )
    one = [("file", ("a.png", drawing()))]
    assert_error(client.post("/v1/interpolate", files=one), 422, "send 2 files")
    assert client.post("/v1/interpolate", files=one * 3).status_code in (400, 413, 422)
    assert_error(
        client.post("/v1/interpolate", files=one * 2, data={"steps": "many"}), 422, "steps"
    )
    assert_error(
        client.post("/v1/interpolate", files=one * 2, data={"colour": "red"}), 422, "colour"
    )


# --- traverse -----------------------------------------------------------------------------------


def test_traversing_a_principal_axis_walks_in_its_standard_deviations(client):
    axes = client.get("/v1/model").json()["latent_axes"]
    body = client.post("/v1/traverse", json={"axis": 2, "range": [-2, 2], "steps": 5}).json()
    assert body["offsets"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert body["sigma"] == pytest.approx(axes["stddev"][2])
    start = np.asarray(axes["mean"])
    expected = start + np.outer(body["offsets"], np.asarray(axes["axes"][2]) * axes["stddev"][2])
    np.testing.assert_allclose(body["latents"], expected, rtol=1e-5, atol=1e-6)
    assert len(body["images"]) == 5


def test_traversing_a_dimension_changes_only_that_coordinate(client):
    code = [0.5] * D
    body = client.post(
        "/v1/traverse",
        json={"latent": code, "axis": 7, "basis": "dimension", "range": [-1, 3], "steps": 3},
    ).json()
    codes = np.asarray(body["latents"])
    np.testing.assert_allclose(np.delete(codes, 7, axis=1), 0.5)
    axes = client.get("/v1/model").json()["latent_axes"]
    spread = np.sqrt(((np.asarray(axes["axes"])[:, 7] * axes["stddev"]) ** 2).sum())
    assert body["sigma"] == pytest.approx(spread, rel=1e-5)
    np.testing.assert_allclose(codes[:, 7], 0.5 + np.array([-1, 1, 3]) * spread, rtol=1e-5)


def test_a_model_without_principal_axes_traverses_dimensions_in_prior_units(plain_client):
    assert_error(plain_client.post("/v1/traverse", json={"axis": 0}), 422, "basis", "latent_axes")
    body = plain_client.post(
        "/v1/traverse", json={"axis": 0, "basis": "dimension", "range": [0, 2], "steps": 3}
    ).json()
    assert body["sigma"] == 1.0
    np.testing.assert_allclose(np.asarray(body["latents"])[:, 0], [0, 1, 2])


@pytest.mark.parametrize(
    "body, words",
    [
        ({"axis": 20}, ["axis", "below latent_dim"]),
        ({"axis": -1}, ["axis"]),
        ({"range": [-11, 0]}, ["range"]),
        ({"range": [0]}, ["range"]),
        ({"steps": 100}, ["VAE_MAX_STEPS"]),
        ({"basis": "diagonal"}, ["basis"]),
        ({"latent": [0.0] * 3}, ["latent", "needs 20"]),
        ({"axis": 1.5}, ["axis"]),
    ],
)
def test_a_bad_traversal_is_a_422_naming_the_field(client, body, words):
    assert_error(client.post("/v1/traverse", json=body), 422, *words)


# --- score --------------------------------------------------------------------------------------


def test_scoring_codes_scores_their_decoded_digits_repeatably(client):
    codes = [[0.0] * D, [0.3] * D]
    body = client.post("/v1/score", json={"latents": codes}).json()
    decoded = FakeModel().decode(np.asarray(codes, np.float32))
    np.testing.assert_allclose(body["log_px"], expected_score(decoded), atol=1e-3)
    assert body["samples"] == SCORE_REFERENCE["samples"]
    assert body["seed"] == SCORE_REFERENCE["seed"]
    assert body["reference_examples"] == SCORE_REFERENCE["examples"]
    assert body["percentile"] == [latent.percentile(v, reference()) for v in body["log_px"]]
    assert client.post("/v1/score", json={"latents": codes}).json() == body


def test_an_image_scores_the_same_whatever_else_is_in_the_request(client):
    seven = ("file", ("seven.png", drawing()))
    alone = client.post("/v1/score", files=[seven]).json()
    together = client.post(
        "/v1/score", files=[("file", ("o.png", drawing("zero"))), seven, seven]
    ).json()
    assert together["log_px"][1:] == alone["log_px"] * 2


def test_scoring_uploads_agrees_with_reconstruct(client):
    files = [("file", ("a.png", drawing())), ("file", ("b.png", drawing("zero")))]
    scored = client.post("/v1/score", files=files).json()
    followed = client.post("/v1/reconstruct", files=files).json()
    assert scored["log_px"] == followed["log_px"]
    assert scored["percentile"] == followed["percentile"]


def test_a_model_without_a_score_reference_still_scores(plain_client):
    body = plain_client.post("/v1/score", json={"latents": [[0.0] * D]}).json()
    assert body["percentile"] == [None] and body["reference_examples"] is None
    assert body["samples"] == latent.FALLBACK_SCORE_SAMPLES


@pytest.mark.parametrize(
    "request_kwargs, status, words",
    [
        ({"json": {"latents": []}}, 422, ["latents"]),
        ({"json": {"latents": [[0.0] * 4]}}, 422, ["needs 20"]),
        ({"json": {"latents": [[0.0] * D] * 17}}, 422, ["VAE_MAX_BATCH"]),
        ({"json": {"codes": [[0.0] * D]}}, 422, ["codes"]),
        ({"files": [("file", ("x.gif", b"GIF89a"))]}, 415, ["x.gif"]),
        ({"files": [("picture", ("a.png", b"x"))]}, 422, ["file", "picture"]),
    ],
)
def test_a_bad_score_request_is_a_4xx_naming_the_field(client, request_kwargs, status, words):
    assert_error(client.post("/v1/score", **request_kwargs), status, *words)


def test_scoring_answers_json_only(client):
    response = client.post(
        "/v1/score", json={"latents": [[0.0] * D]}, headers={"Accept": "image/png"}
    )
    assert_error(response, 406, "application/json")


# --- report pictures ----------------------------------------------------------------------------


def test_report_pictures_are_listed_and_served_without_server_paths(tmp_path):
    model_dir = make_versions(tmp_path, 1)
    report = model_dir / "vae" / "1" / "report"
    report.mkdir()
    picture = pictures.to_png(np.eye(28))
    (report / "samples.png").write_bytes(picture)
    (report / "notes.txt").write_text("not a picture")
    with fake_client(model_dir) as client:
        assert client.get("/v1/model/report").json() == {"version": 1, "pictures": ["samples.png"]}
        answer = client.get("/v1/model/report/samples.png")
        assert answer.content == picture
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["x-content-type-options"] == "nosniff"
        missing = client.get("/v1/model/report/latent_map.png")
        assert_error(missing, 404, "latent_map.png")
        assert str(tmp_path) not in missing.text
        for name in ("notes.txt", "..%2Fmetadata.json", ".hidden.png", "%2Fetc%2Fpasswd.png"):
            assert client.get(f"/v1/model/report/{name}").status_code in (404, 422)
        assert_error(client.get("/v1/model/report/samples.png?version=7"), 404, "version 7")


def test_a_version_without_a_report_lists_no_pictures(client):
    assert client.get("/v1/model/report").json() == {"version": 1, "pictures": []}
