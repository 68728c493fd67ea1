"""The lifecycle on real SavedModels and a real ``vae-serve`` process: a new version appears
under steady load and not one request fails; a corrupt or incomplete newest version is
skipped with the reason; a permission problem says "permission denied"."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, **env: str) -> tuple[str, subprocess.Popen]:
    """``vae-serve`` on the model folder; its log goes to a file beside it (a pipe that
    nobody reads would fill up and block the server)."""
    port = free_port()
    environment = {
        **os.environ,
        "VAE_MODEL_DIR": str(model_dir),
        "VAE_WORKERS": "1",
        "VAE_MODEL_POLL_SECONDS": "0.2",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **env,
    }
    log = open(model_dir / "server.log", "w+")  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=5)
            return url, process
        except httpx.HTTPError:
            assert process.poll() is None, Path(log.name).read_text()
            time.sleep(0.3)
    process.kill()
    pytest.fail("vae-serve did not start")


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, then the server's whole log."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    log = process.log  # type: ignore[attr-defined]
    log.close()
    return Path(log.name).read_text()


def publish(source: Path, model_dir: Path, version: int) -> Path:
    """Copy a version in as vae-train does: into a staging folder, then one rename."""
    base = model_dir / "vae"
    base.mkdir(exist_ok=True)
    staging = base / f".copy-{version}"
    shutil.copytree(source, staging)
    target = base / str(version)
    os.rename(staging, target)
    return target


def wait_for(url: str, condition, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/v1/models/vae", timeout=60).json()
        states = {int(s["version"]): s for s in status["model_version_status"]}
        if condition(states):
            return states
        time.sleep(0.2)
    pytest.fail(f"lifecycle did not get there: {status}")


def until(condition, what: str, timeout: float = 120) -> None:
    """Poll until ``condition()`` holds: an event, not a duration."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.fixture
def models(tmp_path, version_dir) -> Path:
    publish(version_dir, tmp_path, 1)
    return tmp_path


def test_a_new_version_under_steady_load_fails_no_request(models, version_dir):
    url, process = start_server(models)
    results: Counter = Counter()
    versions: Counter = Counter()
    failures: list[tuple[float, str]] = []
    stopping = threading.Event()

    def load(seed: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stopping.is_set():
                try:
                    response = client.post("/v1/generate", json={"count": 2, "seed": seed})
                    results[response.status_code] += 1
                    versions[response.headers.get("x-model-version")] += 1
                except httpx.HTTPError as error:
                    results[type(error).__name__] += 1
                    failures.append((time.monotonic(), type(error).__name__))

    try:
        wait_for(url, lambda s: s.get(1, {}).get("state") == "AVAILABLE")
        threads = [threading.Thread(target=load, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        until(lambda: versions["1"] >= 100, "answers from version 1 under load")
        published = time.monotonic()
        publish(version_dir, models, 2)
        wait_for(url, lambda s: s.get(2, {}).get("state") == "AVAILABLE" and s[1]["state"] == "END")
        until(lambda: versions["2"] >= 100, "answers from version 2 under load")
        stopping.set()
        for thread in threads:
            thread.join(30)
    finally:
        log = stop(process)
    when = [(round(t - published, 1), name) for t, name in failures]
    assert set(results) == {200}, f"{results} at {when} s after publishing\n{log[-3000:]}"
    assert versions["1"] > 0 and versions["2"] > 0, versions
    assert "model version 1 unloaded" in log


def test_a_corrupt_newest_version_is_skipped_and_the_server_stays_ready(models, version_dir):
    broken = publish(version_dir, models, 2)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    url, process = start_server(models)
    try:
        states = wait_for(url, lambda s: 2 in s and s[2]["state"] == "END")
        assert states[2]["status"]["error_code"] == "DATA_LOSS"
        assert states[1]["state"] == "AVAILABLE"
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.post(f"{url}/v1/generate", json={}).headers["x-model-version"] == "1"
        # A version whose variables are missing (say, a copy that was not finished).
        partial = publish(version_dir, models, 3)
        shutil.rmtree(partial / "variables")
        states = wait_for(url, lambda s: 3 in s and s[3]["state"] == "END")
        assert states[3]["status"]["error_code"] != "OK"
        assert httpx.get(f"{url}/readyz").status_code == 200
    finally:
        stop(process)


def test_a_version_without_the_signatures_is_refused_saying_which(models, version_dir):
    import tensorflow as tf

    class OnlyDecode(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 20], tf.float32, name="z")])
        def decode(self, z):
            return {"images": tf.zeros([tf.shape(z)[0], 28, 28])}

    module = OnlyDecode()
    target = models / "vae" / "2"
    tf.saved_model.save(module, str(target), signatures={"decode": module.decode})
    shutil.copy(version_dir / "metadata.json", target / "metadata.json")
    url, process = start_server(models)
    try:
        states = wait_for(url, lambda s: 2 in s and s[2]["state"] == "END")
        assert states[2]["status"]["error_code"] == "FAILED_PRECONDITION"
        assert "encode" in states[2]["status"]["error_message"]
    finally:
        stop(process)


def test_with_no_good_version_inference_is_503_saying_what_is_wrong(tmp_path, version_dir):
    broken = publish(version_dir, tmp_path, 1)
    (broken / "metadata.json").write_text("{}")
    url, process = start_server(tmp_path)
    try:
        wait_for(url, lambda s: 1 in s and s[1]["state"] == "END")
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and "metadata.json is invalid" in ready.text
        generate = httpx.post(f"{url}/v1/generate", json={})
        assert generate.status_code == 503 and "FAILED_PRECONDITION" in generate.text
        assert str(tmp_path) not in generate.text
    finally:
        stop(process)


def test_an_unreadable_version_says_permission_denied(tmp_path, version_dir):
    """A folder the service may not read (as vae-train's 0700 staging folders were, seen from
    a container's other user) must be reported as "permission denied", not as a missing
    SavedModel. Root reads everything, so as root the check runs without the capabilities
    that bypass file permissions (setpriv), on a folder owned by another user."""
    target = publish(version_dir, tmp_path, 1)
    variables = target / "variables"
    command = [
        sys.executable,
        "-c",
        (
            "import sys; from pathlib import Path\n"
            "from app.serving.tensorflow_model import VaeModel\n"
            "from app.serving.errors import LoadError\n"
            "try:\n    VaeModel(Path(sys.argv[1]), '/CPU:0')\n"
            "except LoadError as e:\n    print(e.code, e.message)\n"
        ),
        str(target),
    ]
    if os.geteuid() == 0:
        os.chown(variables, 65534, 65534)
        os.chmod(variables, 0o700)
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    else:
        os.chmod(variables, 0o000)
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    finally:
        os.chmod(variables, 0o755)
    assert result.stdout.startswith("PERMISSION_DENIED"), result.stdout + result.stderr
    assert "permission denied reading vae/1/variables" in result.stdout
    assert "chmod -R a+rX" in result.stdout
