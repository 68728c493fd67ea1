"""Which version a request runs on (``app.api.deps``): picked when its dependencies are solved,
held from admission to its answer. A protocol request whose body is still arriving when a new
version is swapped in runs on the new one; a version retired after it was picked is not held."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.serving.errors import Unavailable
from tests.support.fakes import D, FakeLoader, make_versions

PROTOCOL_REQUESTS = {
    "predict": ("/v1/models/vae:predict", {"instances": [[0.0] * D]}),
    "v2": (
        "/v2/models/vae/infer",
        {"inputs": [{"name": "z", "shape": [1, D], "datatype": "FP32", "data": [0.0] * D}]},
    ),
}


def http_scope(path: str, body: bytes) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def until(condition, timeout: float = 10.0) -> None:
    """Wait on the event loop (the service's own tasks run meanwhile) until ``condition()``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_REQUESTS))
def test_a_body_still_arriving_during_a_swap_runs_on_the_new_version(tmp_path: Path, protocol):
    path, document = PROTOCOL_REQUESTS[protocol]
    body = json.dumps(document).encode()
    settings = Settings(model_dir=make_versions(tmp_path, 1), model_poll_seconds=0.02)
    app = create_app(settings, FakeLoader())
    served = app.state.runtime.served

    async def scenario() -> tuple[int, dict[bytes, bytes]]:
        swapped = asyncio.Event()
        sent: list[dict] = []

        async def receive() -> dict:
            if not swapped.is_set():  # the first half, then nothing until the swap
                swapped.set()
                return {"type": "http.request", "body": body[:10], "more_body": True}
            await until(lambda: served.versions == [2])
            return {"type": "http.request", "body": body[10:], "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        async with app.router.lifespan_context(app):
            request = asyncio.create_task(app(http_scope(path, body), receive, send))
            await swapped.wait()
            make_versions(tmp_path, 2)
            await request
            await until(lambda: served.statuses(1)[0].state.name == "END")
        return sent[0]["status"], dict(sent[0]["headers"])

    status, headers = asyncio.run(scenario())
    assert status == 200
    assert headers[b"x-model-version"] == b"2"


def test_a_version_retired_after_it_was_picked_is_not_held(tmp_path: Path):
    settings = Settings(model_dir=make_versions(tmp_path, 1), model_poll_seconds=0)
    app = create_app(settings, FakeLoader())
    served = app.state.runtime.served

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            picked = served.get()
            served.hold(picked)  # another request still runs on it
            picked.retiring = True  # as a swap marks it
            with pytest.raises(Unavailable, match="replaced while this request was read"):
                served.hold(picked)
            assert picked.leases == 1
            served.release(picked)  # the last one out unloads it
            await until(lambda: served.statuses(1)[0].state.name == "END")

    asyncio.run(scenario())
