"""`vae-train` end to end on real MNIST: export, interruption and --resume, --if-missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def vae_train(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "training", *args], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def test_interrupted_run_resumes_from_its_last_epoch(tmp_path, data_dir):
    args = ["--preset", "tiny", "--epochs", "3", "--train-limit", "2000", "--no-eval",
            "--model-dir", str(tmp_path), "--data-dir", str(data_dir)]
    first = vae_train(*args)
    checkpoints = tmp_path / "checkpoints" / "tiny"
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob("**/*.json")) and time.monotonic() < deadline:
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # Ctrl-C after the first epoch's checkpoint
    output = first.communicate(timeout=60)[0]
    if first.returncode == 0:
        pytest.skip("training finished before the interrupt arrived")
    assert first.returncode == 130 and "--resume" in output
    assert not (tmp_path / "vae").exists() or not any((tmp_path / "vae").iterdir())

    second = vae_train(*args, "--resume")
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    assert "Epoch 1/3" not in output and "Epoch 3/3" in output
    metadata = json.loads((tmp_path / "vae" / "1" / "metadata.json").read_text())
    assert metadata["preset"] == "tiny" and metadata["epochs"] == 3
    assert len(metadata["dataset"]["sha256"]) == 4 and metadata["tensorflow_version"]


def test_if_missing_does_not_train_again(model_dir):
    run = vae_train("--if-missing", "--model-dir", str(model_dir))
    output = run.communicate(timeout=120)[0]
    assert run.returncode == 0 and "already holds a model" in output
    assert sorted(p.name for p in (model_dir / "vae").iterdir()) == ["1"]


def test_bad_preset_is_a_clear_error():
    run = vae_train("--preset", "huge")
    output = run.communicate(timeout=60)[0]
    assert run.returncode == 2 and "invalid choice" in output
