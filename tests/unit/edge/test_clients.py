"""Who may use the service and how much of it one client may take: the API-key matrix through
the app (with the OpenAPI scheme the docs UI uses), per-client requests in flight, rate and
queue share (429, the other clients unaffected), trickling bodies cut (408), the connection
count per address, and the forwarded address believed only from trusted proxies."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.edge import api_keys
from app.edge.api_keys import key_line
from app.edge.clients import TokenBucket
from app.edge.connection import PeerConnections
from app.edge.request_guard import RequestGuard
from app.edge.server import uvicorn_options
from app.main import create_app
from app.serving.admission import Admission
from app.serving.errors import Overloaded, OverShare
from tests.support.fakes import FakeLoader, Gate, make_versions

KEYS = {"alice": "alice-key", "bob": "bob-key", "prometheus": "scrape-key"}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def write_keys(path, *names: str) -> None:
    path.write_text("".join(key_line(name, KEYS[name]) + "\n" for name in names))
    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def keys_file(tmp_path, monkeypatch):
    monkeypatch.setattr(api_keys, "RECHECK_SECONDS", 0.0)
    path = tmp_path / "api-keys.txt"
    write_keys(path, *KEYS)
    return path


def serve(tmp_path, loader=None, **settings) -> TestClient:
    make_versions(tmp_path, 1)
    app = create_app(
        Settings(model_dir=tmp_path, model_poll_seconds=0, **settings), loader or FakeLoader()
    )
    return TestClient(app)


# --- API keys ---------------------------------------------------------------------------------


def test_the_api_key_matrix(tmp_path, keys_file):
    with serve(tmp_path, api_keys_file=keys_file, metrics_keys="prometheus") as client:
        generate = {"count": 1, "seed": 1}
        missing = client.post("/v1/generate", json=generate)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post("/v1/generate", json=generate, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        basic = client.post("/v1/generate", json=generate, headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
        assert client.post("/v1/generate", json=generate, headers=auth("bob")).status_code == 200

        write_keys(keys_file, "alice", "prometheus")  # bob's key revoked
        assert client.post("/v1/generate", json=generate, headers=auth("bob")).status_code == 401
        assert client.post("/v1/generate", json=generate, headers=auth("alice")).status_code == 200

        # Every API route needs the key: TensorFlow Serving's too, and the uploads.
        predict = {"instances": [[0.0] * 20]}
        assert client.post("/v1/models/vae:predict", json=predict).status_code == 401
        assert client.post("/v1/encode", files={"file": ("a.png", b"x")}).status_code == 401
        # Probes and pages stay open.
        assert client.post("/v2/models/vae/infer", json={}).status_code == 401
        open_paths = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/", "/docs")
        for path in (*open_paths, "/openapi.json", "/static/explorer.js"):
            assert client.get(path).status_code == 200, path
        # /metrics: its own key only.
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth("alice")).status_code == 403
        scraped = client.get("/metrics", headers=auth("prometheus"))
        assert scraped.status_code == 200
        assert 'vae_key_requests_total{key="alice"}' in scraped.text


def test_the_openapi_description_declares_the_key_for_the_docs_ui(tmp_path, keys_file):
    with serve(tmp_path, api_keys_file=keys_file) as client:
        document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["APIKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["APIKey"]["description"],
    }
    paths = document["paths"]
    for path, method in (
        ("/v1/generate", "post"),
        ("/v1/score", "post"),
        ("/v1/models/vae:predict".replace("vae", "{model_name}"), "post"),
    ):
        assert paths[path][method]["security"] == [{"APIKey": []}], path
    assert "security" not in paths["/healthz"]["get"]


def test_without_keys_nothing_asks_for_one(tmp_path):
    with serve(tmp_path) as client:
        assert client.post("/v1/generate", json={}).status_code == 200
        assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


# --- per-client limits ------------------------------------------------------------------------


def test_requests_in_flight_beyond_a_clients_share_get_429(tmp_path, keys_file):
    gate = Gate()
    with (
        serve(
            tmp_path, FakeLoader(gate=gate), api_keys_file=keys_file, client_max_requests=1
        ) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        held = pool.submit(client.post, "/v1/generate", json={}, headers=auth("alice"))
        assert gate.waiting.wait(10)
        refused = client.post("/v1/generate", json={}, headers=auth("alice"))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "VAE_CLIENT_MAX_REQUESTS" in refused.json()["detail"]
        # Another client is not affected by alice's share.
        assert client.get("/v1/model", headers=auth("bob")).status_code == 200
        gate.open()
        assert held.result().status_code == 200
        assert client.post("/v1/generate", json={}, headers=auth("alice")).status_code == 200


def test_a_client_over_its_rate_gets_429_with_the_time_to_wait(tmp_path):
    with serve(tmp_path, client_rate=0.5, client_burst=2) as client:
        statuses = [client.get("/v1/model").status_code for _ in range(3)]
        refused = client.get("/v1/model")
    assert statuses == [200, 200, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) in (1, 2)
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_a_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, burst=3, tokens=3.0, stamp=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # a token every half second
    assert bucket.take(0.5) == 0.0
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # at most the burst


def test_admitted_rows_beyond_a_clients_share_get_429_and_leave_room_to_others():
    admission = Admission(max_rows=10, timeout=5, per_client=4)

    async def scenario() -> None:
        async with admission.admit(3, "decode", "greedy"):
            with pytest.raises(OverShare):
                async with admission.admit(2, "decode", "greedy"):
                    pass
            async with admission.admit(4, "decode", "polite"):
                assert admission.rows == 7
                with pytest.raises(Overloaded):  # the whole service full: 503 as before
                    async with admission.admit(4, "decode", "third"):
                        pass
        assert admission.rows == 0 and admission.client_rows == {}
        async with admission.admit(9, "decode", "greedy"):  # a first request may be large
            pass

    asyncio.run(scenario())


# --- bodies -----------------------------------------------------------------------------------


async def reads_the_body(scope, receive, send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_trickling_body_is_cut_with_408_and_a_steady_one_is_not():
    """After the grace, a body must average VAE_BODY_MIN_RATE bytes a second."""
    guard = RequestGuard(
        reads_the_body,
        max_upload_bytes=10**6,
        max_json_bytes=10**6,
        body_timeout=5,
        body_grace=0.2,
        body_min_rate=1000,
    )

    async def send_body(chunk: int, pause: float) -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            await asyncio.sleep(pause)
            return {"type": "http.request", "body": b"x" * chunk, "more_body": True}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/decode"}
        scope["headers"] = [(b"content-type", b"application/json"), (b"content-length", b"9999")]
        try:
            await asyncio.wait_for(guard(scope, receive, send), timeout=3)
        except Exception as error:  # noqa: BLE001 - the guard raises the 408 for the app
            return [{"error": error}]
        return sent

    cut = asyncio.run(send_body(chunk=1, pause=0.02))  # 50 bytes a second
    assert getattr(cut[0]["error"], "status_code", None) == 408
    assert "VAE_BODY_MIN_RATE" in cut[0]["error"].detail
    # 100 kB a second for the same time: on pace; it ends by timing out here, not by a 408.
    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(send_body(chunk=2000, pause=0.02), timeout=0.6))


# --- addresses --------------------------------------------------------------------------------


def test_connections_are_counted_per_address_and_trusted_proxies_are_not():
    peers = PeerConnections(limit=2, trusted="10.0.0.0/8, 192.168.1.5")
    assert peers.counts("127.0.0.2") and not peers.counts("10.1.2.3")
    assert not peers.counts("192.168.1.5") and peers.counts("192.168.1.6")
    assert [peers.add("127.0.0.2") for _ in range(3)] == [True, True, False]
    assert peers.add("127.0.0.3")  # another address has its own share
    peers.remove("127.0.0.2")
    assert peers.add("127.0.0.2")
    assert not PeerConnections(limit=0, trusted="").counts("127.0.0.2")
    assert not PeerConnections(limit=5, trusted="*").counts("127.0.0.2")


def test_x_forwarded_for_is_believed_from_trusted_proxies_only():
    assert uvicorn_options(Settings())["proxy_headers"] is False
    trusting = uvicorn_options(Settings(trusted_proxies="172.29.64.10"))
    assert trusting["proxy_headers"] is True
    assert trusting["forwarded_allow_ips"] == "172.29.64.10"
