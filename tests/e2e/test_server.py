"""End to end: a real `vae-serve` process on loopback (its defaults: two worker processes), real
HTTP, a real trained model."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w+")  # noqa: SIM115
    env = {**os.environ, "VAE_MODEL_DIR": str(model_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
        assert process.poll() is None, open(log.name).read()
    else:
        process.kill()
        pytest.fail("vae-serve did not become ready")
    process.log_path = log.name
    yield url, process
    if process.poll() is None:
        process.kill()
    log.close()


def test_generate_png_over_real_http(server):
    url, _ = server
    response = httpx.post(
        f"{url}/v1/generate", json={"count": 16, "seed": 1}, headers={"Accept": "image/png"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(response.content))
    assert grid.size[0] >= 4 * 28 and grid.mode == "L"


def test_encode_decode_and_model_over_real_http(server, mnist):
    url, _ = server
    buffer = io.BytesIO()
    Image.fromarray(mnist.x_test[0]).save(buffer, "PNG")
    encoded = httpx.post(f"{url}/v1/encode", files={"file": ("7.png", buffer.getvalue())}).json()
    decoded = httpx.post(f"{url}/v1/decode", json={"latents": encoded["mu"]}).json()
    assert len(decoded["images"]) == 1
    assert httpx.get(f"{url}/v1/model").json()["device"] == "CPU"


def test_a_tensorflow_serving_client_works_unchanged(server):
    """What a TensorFlow Serving client does (here with the standard library alone): POST
    instances to /v1/models/<name>:predict, read predictions."""
    url, _ = server
    z = [[0.0] * 20, [0.5] * 20]
    request = urllib.request.Request(
        f"{url}/v1/models/vae:predict",
        data=json.dumps({"instances": z}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        predictions = json.load(response)["predictions"]
    assert len(predictions) == 2 and len(predictions[0]) == 28 and len(predictions[0][0]) == 28
    status = json.load(urllib.request.urlopen(f"{url}/v1/models/vae", timeout=30))
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_metrics_add_up_every_worker(server):
    """Prometheus multiprocess mode: whichever worker answers the scrape, the counts are the
    whole server's."""
    url, _ = server

    def generated() -> float:
        text = httpx.get(f"{url}/metrics").text
        prefix = 'vae_images_total{endpoint="generate"}'
        line = [x for x in text.splitlines() if x.startswith(prefix)]
        return float(line[0].split()[-1]) if line else 0.0

    before = generated()
    for seed in range(40):  # a new connection each: both workers answer some
        httpx.post(f"{url}/v1/generate", json={"count": 1, "seed": seed})
    for _ in range(5):  # the same total from every worker's scrape
        assert generated() == before + 40


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_each_worker_listens_on_its_own_socket(server):
    """Two listening sockets on the port (one per worker, SO_REUSEPORT): the kernel spreads
    connections over both, instead of the worker woken first accepting all that wait."""
    url, _ = server
    port = f"{int(url.rsplit(':', 1)[1]):04X}"
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    listening = [r for r in rows if r[1] == f"0100007F:{port}" and r[3] == "0A"]
    assert len(listening) == 2


def test_bad_input_is_4xx_and_the_server_survives(server):
    url, process = server
    bad = httpx.post(
        f"{url}/v1/decode",
        content=b'{"latents": [[NaN]]}',
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 422
    huge = httpx.post(f"{url}/v1/encode", files={"file": ("x.png", b"\0" * (6 * 1024 * 1024))})
    assert huge.status_code == 413
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert process.poll() is None


def test_sigterm_shuts_down_gracefully(server):
    _, process = server
    process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown, so the status is -SIGTERM.
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in open(process.log_path).read()
