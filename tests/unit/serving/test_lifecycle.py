"""The served model's lifecycle (fast tier, NumPy stand-in models): version policies, new
versions picked up while serving, bad versions skipped and reported, roll back by removal,
and a version held by a request is unloaded only after it. The same on real SavedModels
under load: ``test_hot_swap.py``."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.support.fakes import FakeLoader, Gate, make_versions


def serve(model_dir, loader=None, **settings) -> TestClient:
    settings.setdefault("model_poll_seconds", 0.02)
    app = create_app(Settings(model_dir=model_dir, **settings), loader or FakeLoader())
    return TestClient(app)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def served_version(client) -> int:
    return client.get("/v1/model").json()["version"]


def states(client) -> dict[int, tuple[str, str]]:
    statuses = client.get("/v1/models/vae").json()["model_version_status"]
    return {int(s["version"]): (s["state"], s["status"]["error_code"]) for s in statuses}


def test_the_newest_version_is_served_and_a_new_one_is_picked_up(tmp_path):
    make_versions(tmp_path, 1, 2)
    with serve(tmp_path) as client:
        assert served_version(client) == 2
        make_versions(tmp_path, 3)
        wait_until(lambda: served_version(client) == 3)
        wait_until(lambda: states(client)[2] == ("END", "OK"))
        assert states(client)[3] == ("AVAILABLE", "OK")
        assert 1 not in states(client)  # never loaded: the policy only wants the newest


def test_a_bad_newest_version_is_skipped_reported_and_not_fatal(tmp_path):
    make_versions(tmp_path, 1, 2, failing={2: "DATA_LOSS"})
    with serve(tmp_path) as client:
        assert served_version(client) == 1
        assert client.get("/readyz").status_code == 200
        assert states(client)[2] == ("END", "DATA_LOSS")
        status = client.get("/v1/models/vae/versions/2").json()["model_version_status"][0]
        assert "broken on purpose" in status["status"]["error_message"]
        assert 'vae_model_load_failures_total{code="DATA_LOSS"}' in client.get("/metrics").text


def test_a_failed_version_is_tried_again_when_its_files_change(tmp_path):
    make_versions(tmp_path, 1, 2, failing={2: "PERMISSION_DENIED"})
    loader = FakeLoader()
    with serve(tmp_path, loader) as client:
        # A newer broken version, tried at a later poll: version 2 was seen again meanwhile.
        make_versions(tmp_path, 3, failing={3: "DATA_LOSS"})
        wait_until(lambda: 3 in loader.attempts)
        assert loader.attempts.count(2) == 1  # not retried while its files are unchanged
        assert loader.loaded == [1]
        (tmp_path / "vae" / "2" / "fail").unlink()  # e.g. the chmod that fixes it
        wait_until(lambda: served_version(client) == 2)


def test_with_no_good_version_live_is_200_ready_503_saying_what_is_wrong(tmp_path):
    make_versions(tmp_path, 1, failing={1: "PERMISSION_DENIED"})
    with serve(tmp_path) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "version 1 failed to load (PERMISSION_DENIED)" in ready.json()["detail"]
        response = client.post("/v1/generate", json={})
        assert response.status_code == 503 and "PERMISSION_DENIED" in response.text
        predict = client.post("/v1/models/vae:predict", json={"instances": [[0.0] * 20]})
        assert predict.status_code == 503 and "error" in predict.json()


def test_a_service_started_before_training_recovers(tmp_path):
    with serve(tmp_path) as client:
        assert client.get("/readyz").status_code == 503
        make_versions(tmp_path, 1)
        wait_until(lambda: client.get("/readyz").status_code == 200)


def test_a_pinned_version_is_the_only_one_served(tmp_path):
    make_versions(tmp_path, 1, 2)
    with serve(tmp_path, model_version=1) as client:
        assert served_version(client) == 1
        assert client.get("/v1/model?version=2").status_code == 404
        missing = client.post("/v1/models/vae/versions/2:predict", json={"instances": [[0.0] * 20]})
        assert missing.status_code == 404 and missing.json() == {
            "error": "Servable not found for request: Specific(vae, 2)"
        }


def test_a_pinned_version_that_is_missing_says_which_versions_exist(tmp_path):
    make_versions(tmp_path, 1, 2)
    with serve(tmp_path, model_version=7) as client:
        detail = client.get("/readyz").json()["detail"]
        assert "version 7" in detail and "[1, 2]" in detail


def test_several_versions_are_each_addressable(tmp_path):
    make_versions(tmp_path, 1, 2, 3)
    with serve(tmp_path, model_versions="1,3") as client:
        assert served_version(client) == 3
        assert client.get("/v1/model?version=1").json()["version"] == 1
        assert client.get("/v1/model?version=2").status_code == 404
        one = client.post("/v1/generate?version=1", json={"seed": 5}).json()
        three = client.post("/v1/generate?version=3", json={"seed": 5}).json()
        assert one["images"] != three["images"]  # two different models answered
        for version in (1, 3):
            predict = client.post(
                f"/v1/models/vae/versions/{version}:predict", json={"instances": [[0.0] * 20]}
            )
            assert predict.status_code == 200
        assert set(states(client)) == {1, 3}


def test_all_versions_are_served_and_a_removed_one_is_unloaded(tmp_path):
    make_versions(tmp_path, 1, 2)
    with serve(tmp_path, model_versions="all") as client:
        assert {1, 2} <= set(states(client))
        shutil.rmtree(tmp_path / "vae" / "1")
        wait_until(lambda: client.get("/v1/model?version=1").status_code == 404)
        assert served_version(client) == 2


def test_removing_the_newest_version_rolls_back_to_the_previous_one(tmp_path):
    make_versions(tmp_path, 1, 2)
    with serve(tmp_path) as client:
        assert served_version(client) == 2
        shutil.rmtree(tmp_path / "vae" / "2")
        wait_until(lambda: served_version(client) == 1)


def test_the_only_version_removed_from_disk_keeps_being_served(tmp_path):
    make_versions(tmp_path, 1)
    loader = FakeLoader()
    with serve(tmp_path, loader) as client:
        shutil.rmtree(tmp_path / "vae" / "1")
        # A broken version 2, tried at a later poll: the removal has been seen by then.
        make_versions(tmp_path, 2, failing={2: "DATA_LOSS"})
        wait_until(lambda: 2 in loader.attempts)
        assert client.get("/readyz").status_code == 200 and served_version(client) == 1


def test_a_request_on_the_old_version_finishes_on_it_during_a_swap(tmp_path):
    make_versions(tmp_path, 1)
    gate = Gate()  # holds model calls: the request is inside version 1 until it opens
    with serve(tmp_path, FakeLoader(gate=gate), model_poll_seconds=0.05) as client:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.post, "/v1/generate", json={"seed": 3})
            assert gate.waiting.wait(10), "the request never reached the model"
            make_versions(tmp_path, 2)
            wait_until(lambda: states(client).get(2, ("", ""))[0] == "AVAILABLE")
            assert served_version(client) == 2
            assert states(client)[1] == ("UNLOADING", "OK")  # held by the request
            gate.open()
            response = pending.result()
        assert response.status_code == 200 and response.headers["x-model-version"] == "1"
        wait_until(lambda: states(client)[1] == ("END", "OK"))


@pytest.mark.parametrize("value", ["0,2", "x", "1;2"])
def test_bad_version_lists_fail_at_start(value):
    with pytest.raises(ValueError):
        Settings(model_versions=value)


def test_pinning_and_several_versions_cannot_be_combined():
    with pytest.raises(ValueError, match="not both"):
        Settings(model_version=1, model_versions="1,2")
