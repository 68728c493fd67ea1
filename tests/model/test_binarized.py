"""Dynamic binarization, the VampPrior and the importance-weighted objective in TensorFlow,
and the protocol's figure from a real (tiny) binarized export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from training import prior as priors
from training.model import binarize, build_vae, mixture_log_density
from training.presets import get_preset


def test_a_binarized_batch_is_binary_and_its_mean_matches_the_grey_levels():
    grey = np.random.default_rng(0).uniform(size=(256, 28, 28)).astype(np.float32)
    key = tf.constant([3, 0], tf.int64)
    binary = binarize(tf.constant(grey), key).numpy()
    assert set(np.unique(binary)) <= {0.0, 1.0}
    sd = math.sqrt(np.mean(grey * (1 - grey)) / grey.size)
    assert abs(binary.mean() - grey.mean()) < 4 * sd
    # Per pixel, over many draws, the share of ones is the grey level.
    draws = np.mean(
        [
            binarize(tf.constant(grey[:4]), tf.constant([i, 1], tf.int64)).numpy()
            for i in range(400)
        ],
        axis=0,
    )
    assert np.max(np.abs(draws - grey[:4])) < 4 * math.sqrt(0.25 / 400)
    # The same key gives the same digits; another key other digits.
    np.testing.assert_array_equal(binarize(tf.constant(grey), key).numpy(), binary)
    assert not np.array_equal(binarize(tf.constant(grey), key + 1).numpy(), binary)


def test_the_vamp_mixture_density_matches_a_hand_computation():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(3, 2))
    log_vars = rng.normal(size=(3, 2)) * 0.3
    z = rng.normal(size=(4, 2))
    by_hand = []
    for point in z:
        densities = [
            np.prod(np.exp(-0.5 * (point - m) ** 2 / np.exp(g)) / np.sqrt(2 * np.pi * np.exp(g)))
            for m, g in zip(means, log_vars, strict=True)
        ]
        by_hand.append(math.log(np.mean(densities)))
    got = mixture_log_density(
        tf.constant(z, tf.float32),
        tf.constant(means, tf.float32),
        tf.constant(log_vars, tf.float32),
    )
    np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-5)
    # The exported form (a diagonal mixture) has the same density.
    exported = priors.log_density(
        priors.diagonal_mixture(means, log_vars), tf.constant(z, tf.float32)
    )
    np.testing.assert_allclose(exported.numpy(), by_hand, rtol=1e-4)


def test_the_iwae_objective_is_the_elbo_at_one_sample_and_tighter_with_more():
    images = tf.constant(
        binarize_grey(np.random.default_rng(2).uniform(size=(64, 28, 28)).astype(np.float32))
    )
    bounds = {}
    for k in (1, 50):
        preset = get_preset("tiny").override(iwae_samples=k, prior="vamp", pseudo_inputs=5)
        vae = build_vae(preset, steps_per_epoch=1)
        objective, bound, reconstruction, kl = vae._terms(images, training=False)
        bounds[k] = float(tf.reduce_mean(bound))
        # With the full KL weight the objective is the bound; a single sample's bound is its
        # reconstruction plus its KL estimate.
        np.testing.assert_allclose(objective.numpy(), bound.numpy(), rtol=1e-6)
        if k == 1:
            np.testing.assert_allclose(bound.numpy(), (reconstruction + kl).numpy(), rtol=1e-5)
    # Same untrained weights (same seed): more samples, a bound at least as tight (−log p(x)
    # from above), by much more than its Monte Carlo noise for an untrained model.
    assert bounds[50] < bounds[1]


def binarize_grey(grey: np.ndarray) -> np.ndarray:
    return (np.random.default_rng(9).uniform(size=grey.shape) < grey).astype(np.float32)


@pytest.fixture(scope="module")
def binarized_version(tmp_path_factory, data_dir):
    """A tiny VampPrior model trained on dynamically binarized digits, evaluated small."""
    from training.evaluate import EvalConfig
    from training.train import train

    preset = get_preset("tiny").override(
        epochs=1, data="binarized", prior="vamp", pseudo_inputs=10, iwae_samples=2
    )
    config = EvalConfig(
        iwae_k=10,
        iwae_examples=50,
        samples=200,
        samples_per_digit=20,
        binarized_k=20,
        binarized_examples=40,
        pictures=False,
    )
    base = tmp_path_factory.mktemp("binarized")
    return train(preset, base, data_dir, train_limit=3000, evaluation=config)


def test_a_binarized_preset_records_the_protocol_figure_in_its_metadata(binarized_version):
    metadata = json.loads((binarized_version / "metadata.json").read_text())
    assert metadata["hyperparameters"]["data"] == "binarized"
    figure = metadata["evaluation"]["binarized"]
    assert (figure["k"], figure["examples"], figure["test_seed"]) == (20, 40, 0)
    assert 0 < figure["stderr"] < figure["nll"]
    # The sampling prior is the learned VampPrior: one component per pseudo-input.
    assert metadata["prior"] == {"kind": "vamp", "components": 10}


def test_the_export_scores_under_the_learned_prior(binarized_version):
    from training.protocol import binarized_nll

    signatures = tf.saved_model.load(str(binarized_version)).signatures
    grey = np.random.default_rng(3).uniform(size=(6, 28, 28)).astype(np.float32)
    first = binarized_nll(signatures["log_weights"], grey, k=30, examples=6)
    again = binarized_nll(signatures["log_weights"], grey, k=30, examples=6)
    assert first.nll == again.nll and first.examples == 6  # fixed binarization, fixed draws


def test_vae_eval_prints_the_binarized_protocol(binarized_version, data_dir, capsys, tmp_path):
    from training.evaluate_cli import main

    model_dir = binarized_version.parent.parent
    code = main(
        [
            "--model-dir",
            str(model_dir),
            "--data-dir",
            str(data_dir),
            "--protocol",
            "binarized",
            "--binarized-k",
            "10",
            "--binarized-examples",
            "20",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "IWAE k=10, 20 digits" in out and "±" in out
    written = json.loads((tmp_path / "evaluation-binarized.json").read_text())
    assert written["k"] == 10 and written["examples"] == 20


def test_the_kl_warmup_ramps_up_to_beta():
    from training.model import KLWarmup

    vae = build_vae(get_preset("tiny").override(kl_weight=0.25), steps_per_epoch=1)
    warmup = KLWarmup(2, final=0.25)
    warmup.set_model(vae)
    weights = []
    for epoch in range(3):
        warmup.on_epoch_begin(epoch)
        weights.append(float(vae.kl_weight.numpy()))
    assert weights == pytest.approx([0.125, 0.25, 0.25])
