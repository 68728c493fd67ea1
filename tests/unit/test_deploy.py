"""The deployment files, checked offline: dependency extras, Dockerfile, compose, the nginx
balancer and the Kubernetes manifests (against the Kubernetes JSON schemas).

Building the images and running the stack needs a container engine; the README's Docker section
says how that was verified. These tests keep the files consistent with the code: every setting
of ``app.config.Settings`` reaches the containers, the hardening stays on, and so on.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonpatch  # type: ignore[import-untyped]  # ships no type hints
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type hints
import pytest
import yaml
from packaging.requirements import Requirement

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
sys.path.insert(0, str(ROOT / "deploy"))
from requirements import requirements  # noqa: E402  (deploy/requirements.py)

PREFIX = Settings.model_config["env_prefix"]
SETTINGS = {f"{PREFIX}{name}".upper() for name in Settings.model_fields}
# Read by training/ from the environment directly (VAE_DATA_DIR: where MNIST is cached).
TRAINING_SETTINGS = {
    name
    for path in (ROOT / "training").glob("*.py")
    for name in re.findall(r"[\"'](VAE_[A-Z_]+)[\"']", path.read_text())
}
KNOWN = SETTINGS | TRAINING_SETTINGS
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
GPU_COMPOSE = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
NGINX = ROOT / "deploy" / "nginx"
NGINX_CONF = (NGINX / "nginx.conf").read_text()
PROXY_CONF = (NGINX / "proxy.conf").read_text()
HTTP_SITE, HTTPS_SITE = ((NGINX / f"site-{kind}.conf").read_text() for kind in ("http", "https"))
TLS_COMPOSE = yaml.safe_load((ROOT / "docker-compose.tls.yml").read_text())
KEYS_COMPOSE = yaml.safe_load((ROOT / "docker-compose.keys.yml").read_text())
PYPROJECT = ROOT / "pyproject.toml"
# Where pip installs: what TensorFlow's environment markers see on each platform we support.
PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_machine": "x86_64"},
    "linux-aarch64": {"sys_platform": "linux", "platform_machine": "aarch64"},
    "macos-arm64": {"sys_platform": "darwin", "platform_machine": "arm64"},
    "windows-amd64": {"sys_platform": "win32", "platform_machine": "AMD64"},
}


def interpolate(value: str) -> str:
    """A compose value with its ``${NAME:-default}`` variables at their defaults, and its
    required ``${NAME:?message}`` ones as their names."""
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{(\w+):\?[^}]*\}", r"\1", value)


def dockerfile_stages() -> dict[str, str]:
    """The Dockerfile's stages by name: each one's text from its FROM to the next."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE, flags=re.M)
    stages = {}
    for part in parts[1:]:
        name = re.match(r"FROM \S+ AS (\S+)", part)
        assert name, f"every stage is named: {part.splitlines()[0]}"
        stages[name.group(1)] = part
    return stages


def nginx_directives(text: str) -> list[tuple[str, str]]:
    """(name, arguments) of every directive of an nginx configuration, in order."""
    text = re.sub(r"#.*", "", text)
    return [(m[1], m[2].strip()) for m in re.finditer(r"(\w+)\s*([^;{}]*)[;{]", text)]


def installed_names(extras: list[str], platform: dict[str, str]) -> list[str]:
    """The distributions pip installs for these extras on this platform (direct ones)."""
    names = []
    for line in requirements(PYPROJECT, extras):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(platform):
            names.append(requirement.name)
    return names


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) of every Kubernetes object in deploy/k8s (not the kustomization)."""
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def k8s_object(kind: str) -> dict[str, Any]:
    (found,) = [doc for _, doc in k8s_documents() if doc["kind"] == kind]
    return found


# --- dependency extras ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(
    "extras",
    [
        ["serve", "cpu"],  # the serving image
        ["serve", "cpu", "train"],  # the training image
        ["serve", "gpu", "train"],  # the GPU training image
        ["serve", "train", "cpu", "dev"],  # make install-dev
        ["serve", "train", "gpu", "dev"],  # make install-dev TF=gpu
    ],
)
def test_every_install_holds_exactly_one_tensorflow(extras, platform):
    names = installed_names(extras, PLATFORMS[platform])
    assert len({"tensorflow", "tensorflow-cpu"} & set(names)) == 1, names


def test_the_serving_install_carries_no_training_stack():
    names = installed_names(["serve", "cpu"], PLATFORMS["linux-x86_64"])
    assert "tensorflow-cpu" in names and "fastapi" in names
    assert not {"scikit-learn", "scipy", "matplotlib", "tensorboard"} & set(names)


def test_the_base_install_is_what_the_contract_needs():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert [Requirement(line).name for line in project["dependencies"]] == ["numpy", "pydantic"]


def test_the_wheel_holds_the_three_packages():
    include = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]
    assert set(include["include"]) >= {"app*", "training*", "vae_contract*"}
    wheel = dockerfile_stages()["wheel"]
    for package in ("app", "training", "vae_contract"):
        assert f"COPY {package} ./{package}" in wheel


def test_requirements_lists_base_then_extras_once():
    lines = requirements(PYPROJECT, ["serve", "cpu", "serve"])
    assert [Requirement(line).name for line in lines[:2]] == ["numpy", "pydantic"]
    assert len(lines) == len(set(lines))
    with pytest.raises(ValueError, match="unknown extras"):
        requirements(PYPROJECT, ["servr"])


# --- Dockerfile -------------------------------------------------------------------------------


def test_the_dockerfile_needs_no_frontend_from_a_registry():
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, flags=re.M | re.I)


def test_the_default_target_is_the_cpu_serving_image():
    assert list(dockerfile_stages())[-1] == "serve"


@pytest.mark.parametrize("target", ["serve", "train", "serve-gpu", "train-gpu"])
def test_every_image_runs_unprivileged_with_the_project_on_top(target):
    stage = dockerfile_stages()[target]
    assert "USER vae" in stage
    # The project is the last, small layer: installed from its wheel, without dependencies.
    assert "pip install --quiet --no-deps /tmp/dist/*.whl" in stage


def test_the_kubernetes_pods_run_as_the_image_user():
    uid = int(re.search(r"useradd --uid (\d+)", DOCKERFILE)[1])
    for kind in ("Deployment", "Job"):
        assert k8s_object(kind)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


@pytest.mark.parametrize("target", ["serve", "serve-gpu"])
def test_the_image_healthcheck_follows_vae_port(target):
    assert re.search(r"HEALTHCHECK .*VAE_PORT", dockerfile_stages()[target], flags=re.S)


def test_every_compose_build_target_is_a_dockerfile_stage():
    stages = dockerfile_stages()
    for compose in (COMPOSE, GPU_COMPOSE):
        for name, service in compose["services"].items():
            if "build" in service:
                assert service["build"]["target"] in stages, name


def test_the_gpu_override_builds_the_gpu_targets():
    assert GPU_COMPOSE["services"]["api"]["build"]["target"] == "serve-gpu"
    assert GPU_COMPOSE["services"]["train"]["build"]["target"] == "train-gpu"


# --- compose ----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["train", "api"])
def test_every_setting_reaches_the_container(service):
    spec = SERVICES[service]
    assert set(spec["environment"]) >= KNOWN
    assert {"path": ".env", "required": False} in spec["env_file"]


@pytest.mark.parametrize("service", ["train", "api"])
def test_compose_sets_only_settings_that_exist(service):
    names = {name for name in SERVICES[service]["environment"] if name.startswith(PREFIX.upper())}
    assert names <= KNOWN


@pytest.mark.parametrize("service", ["train", "api", "nginx"])
def test_every_container_is_hardened_by_default(service):
    spec = SERVICES[service]
    assert spec["read_only"] is True
    assert any(mount.split(":")[0] == "/tmp" for mount in spec["tmpfs"])
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    limits = spec["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]


def test_the_api_reads_models_that_train_writes():
    assert "models:/models:ro" in SERVICES["api"]["volumes"]
    assert "models:/models" in SERVICES["train"]["volumes"]


def test_mnist_is_cached_in_a_volume_the_container_can_write():
    (data,) = [v for v in SERVICES["train"]["volumes"] if v.endswith(":/data")]
    volume = interpolate(data).split(":")[0]
    # A named volume takes the ownership of the image's /data, which belongs to the user.
    assert volume in COMPOSE["volumes"]
    assert re.search(r"chown vae:vae .*/data", DOCKERFILE)


def test_training_resumes_and_has_time_to_checkpoint_on_stop():
    train = SERVICES["train"]
    assert {"--if-missing", "--resume"} <= set(train["command"])
    seconds = int(re.fullmatch(r"(\d+)s", train["stop_grace_period"])[1])
    assert seconds >= 20


def test_the_api_healthcheck_follows_vae_port():
    assert "VAE_PORT" in " ".join(SERVICES["api"]["healthcheck"]["test"])


def test_replicas_have_no_host_port_and_the_balancer_publishes_on_loopback():
    assert "ports" not in SERVICES["api"]
    (port,) = SERVICES["nginx"]["ports"]
    host, _, container_port = interpolate(port).split(":")
    assert host == "127.0.0.1"
    assert ("listen", container_port) in nginx_directives(HTTP_SITE)


def test_the_balancer_uses_the_official_image_and_the_repository_config():
    nginx = SERVICES["nginx"]
    assert nginx["image"].split(":")[0] == "nginx"
    for volume in nginx["volumes"]:
        source, target, mode = volume.split(":")
        assert (ROOT / source).is_file() and mode == "ro", volume
    assert "/etc/nginx/nginx.conf" in [v.split(":")[1] for v in nginx["volumes"]]


def test_the_balancer_proxies_to_every_api_replica_and_routes_around_failures():
    directives = dict(nginx_directives(NGINX_CONF + PROXY_CONF))
    port = SERVICES["api"]["environment"]["VAE_PORT"]
    # A variable in proxy_pass plus a resolver: `api` is looked up again, so scaled replicas
    # are found; the resolver line is written at start from the engine's resolv.conf.
    assert directives["set"] == f"$api http://api:{port}"
    assert directives["proxy_pass"] == "$api"
    assert ("include", "/tmp/resolver.conf") in nginx_directives(NGINX_CONF)
    start = (ROOT / "deploy" / "nginx" / "start.sh").read_text()
    assert "resolver $nameserver valid=" in start and "/tmp/resolver.conf" in start
    assert {"error", "timeout", "http_503"} <= set(directives["proxy_next_upstream"].split())
    assert ("add_header", "X-Upstream $upstream_addr always") in nginx_directives(PROXY_CONF)


def test_the_balancer_limits_each_address_and_names_the_client_to_the_service():
    directives = dict(nginx_directives(NGINX_CONF + PROXY_CONF))
    assert directives["worker_processes"] == "auto"
    assert int(directives["worker_connections"]) >= 8192
    assert directives["limit_conn_status"] == directives["limit_req_status"] == "429"
    assert directives["limit_conn"].startswith("per_address ")
    assert directives["limit_req"].startswith("zone=per_address_rate")
    assert ("add_header", "Retry-After 1 always") in nginx_directives(PROXY_CONF)
    # The client as nginx saw it, not a header the client sent; believed from nginx only.
    assert ("proxy_set_header", "X-Forwarded-For $remote_addr") in nginx_directives(PROXY_CONF)
    nginx_address = SERVICES["nginx"]["networks"]["default"]["ipv4_address"]
    assert SERVICES["api"]["environment"]["VAE_TRUSTED_PROXIES"] == nginx_address


def test_the_https_site_redirects_plain_http_and_speaks_modern_tls_only():
    directives = nginx_directives(HTTPS_SITE)
    assert ("listen", "8443 ssl") in directives
    assert ("return", "301 https://$host$https_port$request_uri") in directives
    assert dict(directives)["ssl_protocols"] == "TLSv1.2 TLSv1.3"
    assert ("set", '$hsts "max-age=31536000"') in directives
    assert ("add_header", "Strict-Transport-Security $hsts always") in nginx_directives(PROXY_CONF)
    assert ("set", '$hsts ""') in nginx_directives(HTTP_SITE)
    start = (NGINX / "start.sh").read_text()
    assert "/etc/nginx/tls/tls.crt" in start and "site-https.conf" in start
    assert "/tmp/https-port.conf" in start


def test_the_tls_and_keys_overrides_mount_what_they_need():
    nginx = TLS_COMPOSE["services"]["nginx"]
    targets = {interpolate(v).split(":")[1] for v in nginx["volumes"]}
    assert targets == {"/etc/nginx/tls/tls.crt", "/etc/nginx/tls/tls.key"}
    assert any(interpolate(p).endswith(":8443") for p in nginx["ports"])
    api = KEYS_COMPOSE["services"]["api"]
    assert api["secrets"] == ["api_keys"]
    assert api["environment"]["VAE_API_KEYS_FILE"] == "/run/secrets/api_keys"


def test_env_example_names_every_setting():
    example = (ROOT / ".env.example").read_text()
    assert KNOWN <= set(re.findall(r"\b(VAE_[A-Z_]+)=", example))


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("name", sorted({name for name, _ in k8s_documents()}))
def test_the_kubernetes_manifests_match_the_api_schemas(name, version):
    for file_name, document in k8s_documents():
        if file_name == name:
            kubernetes_validate.validate(document, version, strict=True)


EXPOSED = K8S / "exposed"


def exposed_deployment() -> dict[str, Any]:
    """The api Deployment as the ``exposed`` overlay makes it (its JSON patch applied)."""
    patch = jsonpatch.JsonPatch(yaml.safe_load((EXPOSED / "api-keys.patch.yaml").read_text()))
    return patch.apply(k8s_object("Deployment"))


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_the_exposed_overlay_validates(version):
    kubernetes_validate.validate(exposed_deployment(), version, strict=True)
    ingress = yaml.safe_load((EXPOSED / "ingress.yaml").read_text())
    kubernetes_validate.validate(ingress, version, strict=True)


def test_the_exposed_overlay_reads_keys_from_a_secret_and_terminates_tls():
    overlay = yaml.safe_load((EXPOSED / "kustomization.yaml").read_text())
    assert "../" in overlay["resources"] and "ingress.yaml" in overlay["resources"]
    (secret,) = overlay["secretGenerator"]
    spec = exposed_deployment()["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "api-keys")
    assert volume["secret"]["secretName"] == secret["name"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-keys")
    assert env["VAE_API_KEYS_FILE"] == f"{mount['mountPath']}/{secret['files'][0]}"
    assert env["VAE_TRUSTED_PROXIES"]
    ingress = yaml.safe_load((EXPOSED / "ingress.yaml").read_text())
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] and tls["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == k8s_object("Service")["metadata"]["name"]
    assert "deploy/k8s/exposed/api-keys.txt" in (ROOT / ".gitignore").read_text()


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted({name for name, _ in k8s_documents()})
    images = {image["name"] for image in kustomization["images"]}
    assert images == {"vae-digits", "vae-digits-train"}


def test_the_api_pods_are_probed_on_readyz_and_healthz():
    (container,) = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"]
    port = container["ports"][0]["name"]
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_the_pods_are_hardened_like_compose(kind):
    pod = k8s_object(kind)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # links would inject VAE_*-like variables
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"])
    assert "/tmp" in [mount["mountPath"] for mount in container["volumeMounts"]]


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_the_pods_set_only_settings_that_exist(kind):
    """Every VAE_* variable a pod sets is a setting (TF_* ones are TensorFlow's own)."""
    (container,) = k8s_object(kind)["spec"]["template"]["spec"]["containers"]
    names = {env["name"] for env in container["env"]} | set(k8s_object("ConfigMap")["data"])
    assert {name for name in names if not name.startswith("TF_")} <= KNOWN


def test_the_training_job_writes_the_claim_the_api_reads():
    claim = k8s_object("PersistentVolumeClaim")["metadata"]["name"]
    job = k8s_object("Job")["spec"]["template"]["spec"]
    api = k8s_object("Deployment")["spec"]["template"]["spec"]
    assert job["restartPolicy"] == "Never"
    assert "--resume" in job["containers"][0]["command"]
    for pod, read_only in ((job, False), (api, True)):
        (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"]["claimName"] == claim
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["mountPath"] == "/models"
        assert mount.get("readOnly", False) is read_only


def test_the_service_the_autoscaler_and_the_budget_select_the_api_pods():
    deployment = k8s_object("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service")["spec"]
    assert service["selector"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert service["ports"][0]["targetPort"] == container["ports"][0]["name"]
    target = k8s_object("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    budget = k8s_object("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert budget.items() <= labels.items()
