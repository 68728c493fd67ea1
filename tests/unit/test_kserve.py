"""The KServe deployment (``deploy/kserve/``), checked offline: the InferenceService validates
against KServe's own schema (v0.20.0's CRD, vendored in ``deploy/kserve/schema/``) with strict
field validation, as ``kubectl apply`` sends it to the API server, and it runs the serving image
as a custom predictor speaking v2: probes on v2 health routes the app serves, the models where
KServe mounts them, only settings that exist."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.api.routes import v2
from tests.unit.test_deploy import KNOWN

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "deploy" / "kserve"
SCHEMA = json.loads((KSERVE / "schema" / "inferenceservice-v1beta1.json").read_text())
MANIFEST = yaml.safe_load((KSERVE / "inferenceservice.yaml").read_text())
PREDICTOR = MANIFEST["spec"]["predictor"]
(CONTAINER,) = PREDICTOR["containers"]
ENV = {item["name"]: item.get("value") for item in CONTAINER["env"]}
# KServe's names (pkg/constants): the predictor container, the custom predictor's protocol and
# storage variables, where the storage is mounted, the deployment mode annotation.
PREDICTOR_CONTAINER = "kserve-container"
MODEL_MOUNT = "/mnt/models"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the fields (strict field
    validation: the API server's answer to `kubectl apply` with a misspelt field)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


VALIDATOR = jsonschema.Draft4Validator(strict(SCHEMA["openAPIV3Schema"]))


def problems(manifest: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in VALIDATOR.iter_errors(manifest)
    ]


def test_the_schema_is_kserves_inferenceservice():
    assert (SCHEMA["group"], SCHEMA["kind"], SCHEMA["version"]) == (
        "serving.kserve.io",
        "InferenceService",
        "v1beta1",
    )
    readme = (KSERVE / "schema" / "README.md").read_text()
    assert "v0.20.0" in readme and "Apache License 2.0" in readme
    assert "Apache License" in (KSERVE / "schema" / "LICENSE").read_text()


def test_the_inferenceservice_validates_against_kserves_schema():
    assert MANIFEST["apiVersion"] == f"{SCHEMA['group']}/{SCHEMA['version']}"
    assert MANIFEST["kind"] == SCHEMA["kind"]
    assert DNS_1035.match(MANIFEST["metadata"]["name"])
    assert problems(MANIFEST) == []


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["spec", "predictor", "minReplica"], 0, "Additional properties"),  # misspelt
        (["spec", "predictor", "minReplicas"], "zero", "is not of type 'integer'"),
        (["spec", "predictor", "scaleMetric"], "latency", "is not one of"),
        (["spec", "predictor", "containers", 0, "ports", 0, "containerPort"], "8000", "integer"),
        (["spec", "predictor", "containers", 0, "env", 0, "valu"], "v2", "Additional properties"),
    ],
)
def test_the_validation_catches_mistakes(path, value, message):
    broken = copy.deepcopy(MANIFEST)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = problems(broken)
    assert found and any(message in p for p in found), found


def test_a_manifest_without_a_predictor_is_refused():
    assert any("'predictor' is a required property" in p for p in problems({"spec": {}}))


def test_it_runs_the_serving_image_as_a_custom_predictor_speaking_v2():
    assert CONTAINER["name"] == PREDICTOR_CONTAINER
    assert CONTAINER["image"].split(":")[0] == "vae-digits"
    assert ENV["PROTOCOL"] == "v2"
    (port,) = CONTAINER["ports"]
    assert port["name"] == "http1" and str(port["containerPort"]) == ENV["VAE_PORT"]
    assert ENV["VAE_HOST"] == "0.0.0.0"


def test_its_probes_are_v2_health_routes_the_app_serves():
    paths = {getattr(route, "path", None) for route in v2.health_router.routes}
    readiness = CONTAINER["readinessProbe"]["httpGet"]
    liveness = CONTAINER["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/v2/health/ready" and liveness["path"] == "/v2/health/live"
    assert {readiness["path"], liveness["path"]} <= paths
    assert readiness["port"] == liveness["port"] == CONTAINER["ports"][0]["containerPort"]


def test_the_models_come_from_the_claim_where_kserve_mounts_them():
    assert ENV["STORAGE_URI"] == "pvc://vae-models"
    claim = yaml.safe_load((ROOT / "deploy" / "k8s" / "pvc.yaml").read_text())
    assert claim["metadata"]["name"] == ENV["STORAGE_URI"].removeprefix("pvc://")
    assert ENV["VAE_MODEL_DIR"] == MODEL_MOUNT


def test_it_scales_to_zero_on_knative_and_has_resources():
    assert MANIFEST["metadata"]["annotations"][DEPLOYMENT_MODE] == "Knative"
    assert PREDICTOR["minReplicas"] == 0 and PREDICTOR["maxReplicas"] >= 1
    resources = CONTAINER["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    assert str(resources["limits"]["cpu"]) == ENV["VAE_WORKERS"]  # a worker per CPU


def test_it_sets_only_settings_that_exist():
    assert {name for name in ENV if name.startswith("VAE_")} <= KNOWN


def test_it_runs_unprivileged_like_the_other_manifests():
    assert PREDICTOR["securityContext"]["runAsNonRoot"] is True
    assert CONTAINER["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in CONTAINER["volumeMounts"]} == {"/tmp"}
