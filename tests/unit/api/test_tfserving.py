"""TensorFlow Serving's REST API (fast tier, NumPy stand-in): routes, JSON and status codes as
``tensorflow_serving/g3doc/api_rest.md`` documents them, and its negative cases. The
examples of that page are replayed on this model's signatures: one named input (``decode``),
several named inputs (``sample_batch``), scalar inputs (``sample``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.support.fakes import FakeLoader, FakeModel, make_versions


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    model_dir = make_versions(tmp_path_factory.mktemp("models"), 1, 2, failing={2: "DATA_LOSS"})
    app = create_app(Settings(model_dir=model_dir, model_poll_seconds=0, max_batch=8), FakeLoader())
    with TestClient(app) as client:
        yield client


MODEL = FakeModel(1)
Z = np.random.default_rng(0).normal(size=(2, 20)).round(3)


def predict(client, body, path="/v1/models/vae:predict"):
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, content=raw)


# --- status and metadata --------------------------------------------------------------------


def test_model_status_lists_every_version_as_tf_serving_prints_it(client):
    assert client.get("/v1/models/vae").json() == {
        "model_version_status": [
            {
                "version": "2",
                "state": "END",
                "status": {
                    "error_code": "DATA_LOSS",
                    "error_message": "version 2 is broken on purpose (DATA_LOSS)",
                },
            },
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            },
        ]
    }
    assert client.get("/v1/models/vae/versions/1").json()["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]


def test_metadata_has_model_spec_and_the_signature_def_map(client):
    body = client.get("/v1/models/vae/metadata").json()
    assert body["model_spec"] == {"name": "vae", "signature_name": "", "version": "1"}
    assert body["metadata"]["signature_def"]["signature_def"] == MODEL.signature_defs
    assert client.get("/v1/models/vae/versions/1/metadata").json() == body


@pytest.mark.parametrize(
    "path, message",
    [
        ("/v1/models/half", "Could not find any versions"),
        ("/v1/models/vae/versions/7", "Could not find version 7 of model vae"),
        ("/v1/models/half/metadata", "Servable not found for request: Latest(half)"),
        ("/v1/models/vae/versions/7/metadata", "Servable not found for request: Specific(vae, 7)"),
    ],
)
def test_unknown_models_and_versions_are_404_with_an_error(client, path, message):
    response = client.get(path)
    assert response.status_code == 404 and message in response.json()["error"]


# --- predict: the documented formats ----------------------------------------------------------


def test_row_format_with_one_named_input_answers_predictions(client):
    body = predict(client, {"instances": Z.tolist()}).json()
    np.testing.assert_allclose(body["predictions"], MODEL.decode(Z.astype(np.float32)), rtol=1e-6)


def test_signature_name_serving_default_is_the_default(client):
    default = predict(client, {"instances": Z.tolist()}).json()
    named = predict(client, {"signature_name": "serving_default", "instances": Z.tolist()})
    assert named.json() == default


def test_row_format_with_several_named_inputs_answers_a_list_of_objects(client):
    instances = [{"seeds": 7, "indices": i, "temperatures": 1.0, "digits": -1} for i in (0, 1)]
    body = predict(client, {"signature_name": "sample_batch", "instances": instances}).json()
    assert [sorted(row) for row in body["predictions"]] == [["images", "latents"]] * 2
    expected = MODEL.latents([7, 7], [0, 1], [1.0, 1.0], [-1, -1])
    np.testing.assert_allclose([row["latents"] for row in body["predictions"]], expected, rtol=1e-6)


def test_columnar_format_answers_outputs_unwrapped_or_as_an_object(client):
    one = predict(client, {"inputs": Z.tolist()}).json()
    np.testing.assert_allclose(one["outputs"], MODEL.decode(Z.astype(np.float32)), rtol=1e-6)
    named = predict(client, {"inputs": {"z": Z.tolist()}}).json()
    assert named == one
    several = predict(
        client, {"signature_name": "sample", "inputs": {"count": 3, "seed": 2, "temperature": 0.5}}
    ).json()
    assert sorted(several["outputs"]) == ["images", "latents"]
    assert np.array(several["outputs"]["images"]).shape == (3, 28, 28)


def test_a_versioned_url_predicts_with_that_version(client):
    response = predict(client, {"instances": Z.tolist()}, "/v1/models/vae/versions/1:predict")
    assert response.status_code == 200 and "predictions" in response.json()


def test_predict_without_a_content_type_works_as_curl_d_sends_it(client):
    response = client.post(
        "/v1/models/vae:predict",
        content=json.dumps({"instances": Z.tolist()}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


# --- predict: errors, as TF Serving answers them -----------------------------------------------

BAD_PREDICTS = [
    ({"instances": Z.tolist(), "inputs": Z.tolist()}, 400, "only one of 'inputs' or 'instances'"),
    ({"signature_name": "decode"}, 400, "Missing 'inputs' or 'instances' key"),
    ({"instances": []}, 400, "No values in 'instances'"),
    ({"instances": "z"}, 400, "to be an list/array"),
    ({"signature_name": "nope", "instances": Z.tolist()}, 400, '"nope" not found'),
    ({"signature_name": 100, "instances": Z.tolist()}, 400, "must be a string"),
    ({"instances": [[0.0] * 3]}, 400, "shape [1, 3]"),
    ({"instances": [[0.0] * 20, [0.0] * 19]}, 400, "ragged"),
    ({"instances": [["x"] * 20]}, 400, "not of expected type"),
    ({"instances": [[True] * 20]}, 400, "not of expected type"),
    ({"signature_name": "sample_batch", "instances": [[1, 2]]}, 400, "list of objects"),
    ({"signature_name": "sample_batch", "instances": [{"seeds": 1}]}, 400, "keys must be equal to"),
    ({"signature_name": "sample_batch", "inputs": {"seeds": [1]}}, 400, "Missing named input"),
    (
        {
            "signature_name": "sample_batch",
            "inputs": {"seeds": [1.5], "indices": [0], "temperatures": [1.0], "digits": [-1]},
        },
        400,
        "not of expected type",
    ),
    (
        {
            "signature_name": "sample_batch",
            "inputs": {"seeds": [1], "indices": [0], "temperatures": [1.0], "digits": [12]},
        },
        400,
        "digits",
    ),
    (
        {"signature_name": "sample", "instances": [{"count": 2, "seed": 1, "temperature": 1.0}]},
        400,
        "shape",
    ),
    ({"instances": [[0.0] * 20] * 9}, 400, "VAE_MAX_BATCH"),
    ("instances = [1, 2]", 400, "JSON Parse error"),
    ("", 400, "The document is empty"),
    ("[1, 2]", 400, "not an object"),
    ("[" * 100_000 + "]" * 100_000, 400, "JSON Parse error"),
]


@pytest.mark.parametrize("body, status, message", BAD_PREDICTS)
def test_bad_predict_requests_get_tf_servings_status_and_an_error(client, body, status, message):
    response = predict(client, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/models/half:predict", 404),
        ("/v1/models/vae/versions/9:predict", 404),
        ("/v1/models/vae/versions/2:predict", 404),  # failed to load: not served
    ],
)
def test_predict_on_an_unknown_model_or_version_is_404(client, path, status):
    response = predict(client, {"instances": Z.tolist()}, path)
    assert response.status_code == status and response.json()["error"].startswith(
        "Servable not found for request"
    )


def test_nan_and_infinity_are_accepted_as_tf_serving_does(client):
    response = predict(client, '{"instances": [[NaN' + ", Infinity" * 19 + "]]}")
    assert response.status_code == 200
    assert "NaN" in response.text
