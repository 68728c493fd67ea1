"""The compose balancer for real: the nginx container (podman; the image `nginx:1.27`) with the
repository's configuration, a certificate made here, and an upstream container answering as
`api`. HTTPS with TLS 1.2 and 1.3 only, plain HTTP redirected to it, HSTS, the upstream reached
through it; a client over its rate gets 429 with Retry-After.

``make test`` sets podman up with ``../shared/tools/container-setup`` when it can (``make
containers``); without podman these tests are skipped, saying so.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "deploy" / "nginx"
NGINX_IMAGE = "docker.io/library/nginx:1.27"
UPSTREAM_IMAGE = "docker.io/library/python:3.11-slim"


# `python -m http.server` with a listen backlog of 1024 instead of socketserver's 5: it closes
# every connection, so each proxied request is a new connect, and on a loaded machine a full
# backlog of 5 dropped connects until nginx's 2 s connect timeout answered 504.
UPSTREAM = (
    "from http.server import ThreadingHTTPServer as Server, SimpleHTTPRequestHandler as Handler;"
    "Server.request_queue_size = 1024; Server(('', 8000), Handler).serve_forever()"
)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    cert.chmod(0o644)
    key.chmod(0o644)  # read by nginx's unprivileged user in the container
    return cert, key


@pytest.fixture(scope="module")
def balancer(tmp_path_factory) -> Iterator[dict]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make containers: ../shared/tools/container-setup)")
    for image in (NGINX_IMAGE, UPSTREAM_IMAGE):
        if podman("image", "exists", image, check=False).returncode != 0:
            pytest.skip(f"{image} is not there (make containers sets it up)")
    cert, key = certificate(tmp_path_factory.mktemp("tls"))
    name = f"vae-balancer-{uuid.uuid4().hex[:8]}"
    http_port, https_port = free_port(), free_port()
    podman("network", "create", name)
    try:
        podman(
            "run", "-d", "--name", f"{name}-api", "--network", name, "--network-alias", "api",
            UPSTREAM_IMAGE, "python", "-c", UPSTREAM,
        )  # fmt: skip
        mounts = [
            f"{NGINX / f}:/etc/nginx/{f}:ro"
            for f in ("nginx.conf", "proxy.conf", "site-http.conf", "site-https.conf", "start.sh")
        ] + [f"{cert}:/etc/nginx/tls/tls.crt:ro", f"{key}:/etc/nginx/tls/tls.key:ro"]
        podman(
            "run", "-d", "--name", f"{name}-nginx", "--network", name, "--user", "101:101",
            "--read-only", "--tmpfs", "/tmp", "-e", f"HTTPS_PORT={https_port}",
            "-p", f"127.0.0.1:{http_port}:8080", "-p", f"127.0.0.1:{https_port}:8443",
            *(arg for mount in mounts for arg in ("-v", mount)),
            NGINX_IMAGE, "/bin/sh", "/etc/nginx/start.sh",
        )  # fmt: skip
        https = f"https://127.0.0.1:{https_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(https + "/", verify=str(cert), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", f"{name}-nginx", check=False)
                pytest.fail(f"the balancer did not answer over HTTPS: {logs.stdout}{logs.stderr}")
            time.sleep(0.2)
        yield {"http": f"http://127.0.0.1:{http_port}", "https": https, "cert": str(cert)}
    finally:
        podman("rm", "-f", f"{name}-nginx", f"{name}-api", check=False)
        podman("network", "rm", "-f", name, check=False)


def test_plain_http_is_redirected_to_https(balancer):
    response = httpx.get(balancer["http"] + "/readyz?x=1", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == balancer["https"] + "/readyz?x=1"


def test_https_reaches_the_service_behind_with_hsts(balancer):
    response = httpx.get(balancer["https"] + "/", verify=balancer["cert"])
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert response.headers["x-upstream"].endswith(":8000")
    assert response.extensions["http_version"] == b"HTTP/1.1"


@pytest.mark.parametrize(
    ("version", "served"),
    [
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ],
)
def test_only_tls_1_2_and_1_3_are_spoken(balancer, version, served):
    context = ssl.create_default_context(cafile=balancer["cert"])
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client try: the server must say no
    context.minimum_version = context.maximum_version = version
    port = int(balancer["https"].rsplit(":", 1)[1])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            spoken = tls.version()
    except (ssl.SSLError, ConnectionResetError):
        spoken = None
    assert (spoken is not None) == served, spoken


def test_a_client_over_its_rate_gets_429_with_retry_after(balancer):
    def get(_: int) -> tuple[int, str | None]:
        response = client.get("/")
        return response.status_code, response.headers.get("retry-after")

    with (
        httpx.Client(base_url=balancer["https"], verify=balancer["cert"]) as client,
        ThreadPoolExecutor(16) as pool,
    ):
        started = time.monotonic()
        answers = list(pool.map(get, range(1200)))
        elapsed = time.monotonic() - started
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 429}, statuses
    # limit_req: 200 a second after a burst of 400, however fast or slow this machine sends
    assert statuses[200] <= 401 + 200 * elapsed, (statuses, elapsed)
    assert all(retry == "1" for status, retry in answers if status == 429)
