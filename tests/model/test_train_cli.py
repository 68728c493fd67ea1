"""`vae-train` end to end on real MNIST: Ctrl-C and SIGTERM stop it with its checkpoint,
--resume continues that configuration only, --if-missing; a bad configuration fails before
TensorFlow even loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae_contract import ModelMetadata, list_versions

ENV = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
TINY = ["--preset", "tiny", "--epochs", "3", "--train-limit", "2000", "--no-eval"]

# vae-train in a fresh process, saying at exit whether it loaded TensorFlow (3 s of start-up).
VAE_TRAIN_REPORTING_TENSORFLOW = """
import sys
from training.cli import main
try:
    sys.exit(main(sys.argv[1:]))
finally:
    print("tensorflow loaded:", "tensorflow" in sys.modules, file=sys.stderr)
"""


def vae_train(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "training", *args],
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stop_after_first_epoch(run: subprocess.Popen, model_dir: Path, signum: int) -> str:
    """Send ``signum`` once the run has checkpointed its first epoch; returns its output. The
    run must stop within the epoch it is in: its checkpoint still says one epoch."""
    deadline = time.monotonic() + 180
    while not (done := list((model_dir / "checkpoints").glob("*/training_metadata.json"))):
        assert run.poll() is None, run.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint after 3 minutes"
        time.sleep(0.05)
    run.send_signal(signum)
    # 3.5 s from the signal to the exit, measured with 12 processes per core on this machine.
    output = run.communicate(timeout=60)[0]
    if run.returncode == 0:
        pytest.skip("training finished before the signal arrived")
    assert json.loads(done[0].read_text())["epoch"] == 1, output
    return output


@pytest.mark.parametrize(
    "signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_a_stopped_run_resumes_from_its_last_finished_epoch(tmp_path, data_dir, signum, exit_code):
    # As compose runs it: a first run with no model and no checkpoint yet.
    args = [
        "--if-missing",
        "--resume",
        *TINY,
        "--model-dir",
        str(tmp_path),
        "--data-dir",
        str(data_dir),
    ]
    output = stop_after_first_epoch(vae_train(*args), tmp_path, signum)
    assert "No checkpoint of this configuration yet; training from the start" in output
    assert "WARNING" not in output and "Traceback" not in output, output
    assert f"Stopped by {signal.Signals(signum).name}" in output and "--resume" in output
    assert list_versions(tmp_path / "vae") == [] and not any((tmp_path / "vae").glob(".export-*"))

    second = vae_train(*args)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    assert "Resuming from the checkpoint" in output
    assert "Epoch 1/3" not in output and "Epoch 3/3" in output
    metadata = ModelMetadata.read(tmp_path / "vae" / "1")
    assert metadata.preset == "tiny" and metadata.epochs == 3
    assert len(metadata.history["loss"]) == 3  # the epochs of both runs
    assert not any((tmp_path / "checkpoints").iterdir())  # published: nothing left to resume


def test_resume_never_continues_another_configuration(tmp_path, data_dir):
    base = [*TINY, "--model-dir", str(tmp_path), "--data-dir", str(data_dir)]
    stop_after_first_epoch(vae_train(*base), tmp_path, signal.SIGTERM)
    (stopped,) = (tmp_path / "checkpoints").iterdir()

    other = vae_train(*base, "--resume", "--seed", "7", "--epochs", "2")
    output = other.communicate(timeout=300)[0]
    assert other.returncode == 0, output
    assert f"({stopped.name}: other configurations, not used)" in output
    assert "Epoch 1/2" in output
    assert (stopped / "training_metadata.json").is_file()  # still there to resume


def test_if_missing_does_not_train_again_nor_load_tensorflow(model_dir):
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            VAE_TRAIN_REPORTING_TENSORFLOW,
            "--if-missing",
            "--resume",
            "--model-dir",
            str(model_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "already holds a model" in run.stdout
    assert "tensorflow loaded: False" in run.stderr  # TensorFlow alone takes 3 s to start
    assert list_versions(model_dir / "vae") == [1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "huge"], "invalid choice: 'huge'"),
        (["--epochs", "0"], "epochs: Input should be greater than or equal to 1"),
        (["--prior", "fitted", "--components-per-digit", "0"], "components_per_digit > 0"),
        (["--batch-size", "-8"], "batch_size"),
        (["--prior", "uniform"], "invalid choice"),
        (["--cpu-devices", "2"], "--cpu-devices needs --strategy mirrored"),
    ],
)
def test_vae_train_refuses_a_bad_configuration_before_loading_tensorflow(args, message, tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", VAE_TRAIN_REPORTING_TENSORFLOW, "--model-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "tensorflow loaded: False" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "vae").exists()
