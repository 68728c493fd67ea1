"""Property-based tests of the HTTP API from its own OpenAPI description (Schemathesis), with
every check on, in all four phases (examples, coverage, fuzzing, stateful), against a real
server process serving the NumPy stand-in model.

``tests/schemathesis.toml`` turns off a check only where the API is known to disagree with its
description; each such disagreement is reproduced below as a strict xfail, which fails once it
is fixed (then delete it and its exception in the configuration).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="a dev dependency: pip install schemathesis"
)

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_api_conforms_to_its_openapi_description_under_every_check(server):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--no-color",
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/openapi.json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = [line for line in run.stdout.splitlines() if "generated" in line]
    print("\n" + "\n".join(summary))
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert server.process.poll() is None and server.ready()


# --- known disagreements (tests/schemathesis.toml) ----------------------------------------------
@pytest.fixture(scope="module")
def openapi(server) -> dict:
    return httpx.get(f"{server.url}/openapi.json").json()


def known_issue(number: int, what: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(
        strict=True, raises=AssertionError, reason=f"known issue {number}: {what}"
    )


def _body_schema(openapi: dict, path: str) -> dict:
    content = openapi["paths"][path]["post"]["requestBody"]["content"]
    schema = next(iter(content.values()))["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


@known_issue(1, "the schema does not give the latent row length (the model's latent_dim)")
def test_the_schema_gives_the_length_of_a_latent_row(openapi):
    rows = _body_schema(openapi, "/v1/decode")["properties"]["latents"]["items"]
    assert rows.get("minItems") == rows.get("maxItems") == 20


def test_the_schema_asks_for_at_least_one_file(openapi):
    files = _body_schema(openapi, "/v1/encode")["properties"]["file"]
    assert files.get("minItems", 0) >= 1


def test_the_seed_maximum_is_exact_in_json(openapi):
    maximum = _body_schema(openapi, "/v1/generate")["properties"]["seed"]["anyOf"][0]["maximum"]
    assert float(maximum) == maximum and maximum <= 2**53


def test_a_body_that_is_not_json_gets_a_documented_status(server, openapi):
    response = httpx.post(
        f"{server.url}/v1/generate", content=b"\xff{", headers={"Content-Type": "application/json"}
    )
    assert str(response.status_code) in openapi["paths"]["/v1/generate"]["post"]["responses"]


def test_the_predict_schema_requires_instances_or_inputs(openapi):
    schema = openapi["paths"]["/v1/models/{model_name}:predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert schema["oneOf"] == [{"required": ["instances"]}, {"required": ["inputs"]}]


def test_another_method_on_a_predict_url_is_405_allowing_post(server):
    response = httpx.request("OPTIONS", f"{server.url}/v1/models/vae:predict")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
