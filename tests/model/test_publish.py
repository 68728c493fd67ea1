"""Publishing is atomic and final: a reader polling the model folder during `vae-train` only ever
sees complete versions; versions are world-readable; a failed export leaves nothing; `vae-eval`
never writes into a published version."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from training import prior as priors
from training.evaluate import EvalConfig
from training.evaluate_cli import main as vae_eval
from training.model import build_vae
from training.presets import get_preset
from training.train import Trained, export_version
from vae_contract import METADATA_FILE, ModelMetadata, list_versions, model_base

ENV = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
SMALL_EVAL = [
    "--iwae-k",
    "20",
    "--iwae-examples",
    "100",
    "--eval-samples",
    "500",
    "--samples-per-digit",
    "50",
]


def incomplete(version_dir: Path) -> str | None:
    """What a reader would find missing in a published version, or None."""
    if not (version_dir / "saved_model.pb").is_file():
        return "no saved_model.pb"
    try:
        metadata = ModelMetadata.read(version_dir)
    except Exception as error:  # noqa: BLE001 - any failure to read is the finding
        return f"metadata: {type(error).__name__}: {error}"
    if not metadata.evaluation or metadata.score_reference is None:
        return "metadata without evaluation or score reference"
    missing = [p for p in metadata.evaluation["pictures"] if not (version_dir / p).is_file()]
    return f"missing pictures {missing}" if missing else None


def test_a_reader_polling_during_vae_train_only_sees_complete_versions(tmp_path, data_dir):
    base = model_base(tmp_path)
    seen: dict[int, str | None] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for version in list_versions(base):
                if version not in seen:
                    seen[version] = incomplete(base / str(version))
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "training",
                "--preset",
                "tiny",
                "--epochs",
                "1",
                "--train-limit",
                "2000",
                *SMALL_EVAL,
                "--model-dir",
                str(tmp_path),
                "--data-dir",
                str(data_dir),
            ],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        done.set()
        poller.join()
    assert run.returncode == 0, run.stdout + run.stderr
    assert seen == {1: None}
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # no staging folder left
    # TensorFlow's start-up noise is gone, the news stays.
    output = run.stdout + run.stderr
    assert "Training on CPU" in output and "Evaluation:" in output
    for noise in ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog", "Traceback"):
        assert noise not in output, output


def test_published_versions_are_readable_by_everyone(version_dir):
    modes = {
        path: stat.S_IMODE(path.stat().st_mode) for path in [version_dir, *version_dir.rglob("*")]
    }
    assert {mode for path, mode in modes.items() if path.is_dir()} == {0o755}
    assert {mode for path, mode in modes.items() if path.is_file()} == {0o644}


def test_a_failed_export_leaves_no_version_and_no_staging_folder(tmp_path, mnist):
    preset = get_preset("tiny").override(components_per_digit=0, prior="standard")
    vae = build_vae(preset, steps_per_epoch=1)
    history = {"val_loss": [500.0], "val_reconstruction": [490.0], "val_kl": [10.0]}
    trained = Trained(
        vae,
        priors.standard_normal(preset.latent_dim),
        None,
        np.zeros((10, preset.latent_dim)),
        history,
        seconds=0.0,
    )
    # No samples to judge: the evaluation fails after the SavedModel is staged.
    with pytest.raises(ValueError):
        export_version(tmp_path, trained, mnist, 0, EvalConfig(samples=0, iwae_examples=10))
    assert list(model_base(tmp_path).iterdir()) == []


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def test_vae_eval_writes_where_asked_and_never_into_the_version(
    model_dir, version_dir, data_dir, tmp_path, capsys
):
    before = snapshot(version_dir)
    metadata_before = (version_dir / METADATA_FILE).read_bytes()
    code = vae_eval(
        [
            "--model-dir",
            str(model_dir),
            "--data-dir",
            str(data_dir),
            "--output",
            str(tmp_path / "eval"),
            *SMALL_EVAL,
        ]
    )
    assert code == 0
    assert snapshot(version_dir) == before
    assert (version_dir / METADATA_FILE).read_bytes() == metadata_before
    assert (tmp_path / "eval" / "evaluation.json").is_file()
    assert (tmp_path / "eval" / "report" / "samples.png").is_file()
    assert "test NLL bound (IWAE, k=20)" in capsys.readouterr().out
