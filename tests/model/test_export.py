"""The exported SavedModel's behaviour: versions, a fresh process that loads it with plain
TensorFlow and gets the same outputs as the model in memory, sampling and log weights."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from training import prior as priors
from training.model import build_vae
from training.presets import Preset, get_preset
from training.train import Trained, export_version
from vae_contract import ANY_DIGIT, ModelMetadata, list_versions

RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, tensorflow as tf
    path, inputs, out = sys.argv[1:4]
    m = tf.saved_model.load(path)
    x = np.load(inputs)
    enc = m.signatures["encode"](images=tf.constant(x["images"]))
    dec = m.signatures["decode"](z=tf.constant(x["z"]))
    s = m.signatures["sample"](count=tf.constant(5), seed=tf.constant(7, tf.int64),
                               temperature=tf.constant(1.0))
    d = m.signatures["sample_digit"](count=tf.constant(5), seed=tf.constant(7, tf.int64),
                                     temperature=tf.constant(0.5), digit=tf.constant(3))
    np.savez(out, mu=enc["mu"], sigma=enc["sigma"], log_var=enc["log_var"],
             images=dec["images"], sample=s["latents"], sample_images=s["images"],
             digit=d["latents"])
    """
)


def export_untrained(
    base: Path,
    mnist,
    preset: Preset,
    prior: priors.MixturePrior,
    digit_prior: priors.MixturePrior | None,
) -> tuple[Trained, Path]:
    """An untrained VAE published the way `vae-train` publishes one (without evaluation)."""
    vae = build_vae(preset, steps_per_epoch=1)
    codes = np.random.default_rng(0).normal(size=(100, preset.latent_dim))
    history = {"val_loss": [500.0], "val_reconstruction": [490.0], "val_kl": [10.0]}
    trained = Trained(vae, prior, digit_prior, codes, history, seconds=0.0)
    return trained, export_version(base, trained, mnist, train_examples=0, evaluation=None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist):
    """An untrained tiny VAE with a fitted per-digit prior, exported twice."""
    preset = get_preset("tiny").override(components_per_digit=2)
    rng = np.random.default_rng(0)
    digit_prior = priors.fit_per_digit(
        rng.normal(size=(400, preset.latent_dim)), np.repeat(np.arange(10), 40), 2, seed=0
    )
    base = tmp_path_factory.mktemp("export")
    trained, first = export_untrained(base, mnist, preset, digit_prior, digit_prior)
    _, second = export_untrained(base, mnist, preset, digit_prior, digit_prior)
    return trained.vae, digit_prior, base, first, second


def test_versions_are_next_integers_with_metadata_and_no_leftovers(exported):
    _, _, base, first, second = exported
    assert (first.name, second.name) == ("1", "2")
    assert list_versions(base / "vae") == [1, 2]
    assert sorted(p.name for p in (base / "vae").iterdir()) == ["1", "2"]  # no staging dirs
    metadata = ModelMetadata.read(second)
    assert metadata.name == "vae" and metadata.preset == "tiny" and metadata.evaluation == {}
    assert (second / "saved_model.pb").is_file()


def test_reloaded_in_a_fresh_process_matches_the_model_in_memory(exported, tmp_path):
    vae, digit_prior, _, first, _ = exported
    rng = np.random.default_rng(1)
    inputs = {
        "images": rng.uniform(size=(4, 28, 28)).astype(np.float32),
        "z": rng.normal(size=(4, 20)).astype(np.float32),
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    subprocess.run(
        [
            sys.executable,
            "-c",
            RELOAD_SCRIPT,
            str(first),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "out.npz"),
        ],
        check=True,
        capture_output=True,
    )
    out = np.load(tmp_path / "out.npz")

    mu, log_var = vae.encoder(inputs["images"])
    np.testing.assert_allclose(out["mu"], mu.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["log_var"], log_var.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["sigma"], np.exp(0.5 * log_var.numpy()), rtol=1e-5)
    expected_images = tf.sigmoid(vae.decoder(inputs["z"])).numpy()
    np.testing.assert_allclose(out["images"], expected_images, rtol=1e-5, atol=1e-6)
    # Stateless sampling: the same seed gives the same codes in another process.
    sampler = priors.Sampler(digit_prior, digit_prior)
    expected_sample = sampler.sample(5, tf.constant(7, tf.int64), 1.0, ANY_DIGIT)
    np.testing.assert_allclose(out["sample"], expected_sample.numpy(), rtol=1e-5, atol=1e-5)
    expected_digit = sampler.sample(5, tf.constant(7, tf.int64), 0.5, 3)
    np.testing.assert_allclose(out["digit"], expected_digit.numpy(), rtol=1e-5, atol=1e-5)


def test_digit_sampling_uses_only_that_digits_components():
    rng = np.random.default_rng(0)
    # Ten well-separated clusters: digit d lives around 10·d on the first axis.
    labels = np.repeat(np.arange(10), 50)
    latents = rng.normal(size=(500, 2)) * 0.1
    latents[:, 0] += 10 * labels
    prior = priors.fit_per_digit(latents, labels, 1, seed=0)
    sampler = priors.Sampler(priors.standard_normal(2), prior)
    z = sampler.sample(200, tf.constant(3, tf.int64), 1.0, 7).numpy()
    assert np.all(np.abs(z[:, 0] - 70) < 2)
    # Without a digit, rows come from the sampling prior (here N(0, I)), not the digits'.
    z = sampler.sample(200, tf.constant(3, tf.int64), 1.0, ANY_DIGIT).numpy()
    assert np.abs(z.mean(axis=0)).max() < 0.3 and 0.8 < z.std() < 1.2
    density = priors.log_density(prior, tf.constant(z)).numpy()
    assert np.all(np.isfinite(density))


def test_log_weights_give_an_iwae_bound_tighter_than_the_elbo(exported):
    loaded = tf.saved_model.load(str(exported[3]))
    images = np.random.default_rng(2).uniform(size=(3, 28, 28)).astype(np.float32)
    out = loaded.signatures["log_weights"](
        images=tf.constant(images), samples=tf.constant(50), seed=tf.constant(0, tf.int64)
    )["log_weights"].numpy()
    assert out.shape == (3, 50) and np.all(np.isfinite(out))
    iwae = np.logaddexp.reduce(out, axis=1) - np.log(50)
    assert np.all(iwae >= out.mean(axis=1))


def test_an_images_log_weights_are_the_same_alone_or_in_a_batch(exported):
    """What lets a server merge score requests: the draws depend on the seed only."""
    signature = tf.saved_model.load(str(exported[3])).signatures["log_weights"]
    images = np.random.default_rng(3).uniform(size=(5, 28, 28)).astype(np.float32)
    inputs = {"samples": tf.constant(20), "seed": tf.constant(4, tf.int64)}
    together = signature(images=tf.constant(images), **inputs)["log_weights"].numpy()
    alone = signature(images=tf.constant(images[3:4]), **inputs)["log_weights"].numpy()
    np.testing.assert_allclose(alone[0], together[3], rtol=1e-5)


def test_sample_batch_rows_equal_the_requests_drawn_alone(exported):
    """What lets the service answer many generate requests with one call: each row of
    sample_batch is the image (seed, index) of sample or sample_digit."""
    loaded = tf.saved_model.load(str(exported[3]))
    requests = [(3, 11, 1.0, -1), (1, 12, 0.5, 4), (2, 11, 0.8, 9), (4, 2**40, 1.0, -1)]
    rows = [(seed, i, t, d) for count, seed, t, d in requests for i in range(count)]
    seeds, indices, temperatures, digits = (np.array(c) for c in zip(*rows, strict=True))
    batch = loaded.signatures["sample_batch"](
        seeds=tf.constant(seeds, tf.int64),
        indices=tf.constant(indices, tf.int64),
        temperatures=tf.constant(temperatures, tf.float32),
        digits=tf.constant(digits, tf.int32),
    )
    start = 0
    for count, seed, t, d in requests:
        inputs = {
            "count": tf.constant(count),
            "seed": tf.constant(seed, tf.int64),
            "temperature": tf.constant(t),
        }
        alone = (
            loaded.signatures["sample"](**inputs)
            if d < 0
            else loaded.signatures["sample_digit"](digit=tf.constant(d), **inputs)
        )
        for name in ("latents", "images"):
            np.testing.assert_allclose(
                batch[name][start : start + count], alone[name], rtol=1e-5, atol=1e-6
            )
        start += count


def test_sample_batch_refuses_a_digit_the_model_cannot_draw(tmp_path, mnist):
    preset = get_preset("tiny").override(components_per_digit=0, prior="standard")
    _, version = export_untrained(
        tmp_path, mnist, preset, priors.standard_normal(preset.latent_dim), None
    )
    loaded = tf.saved_model.load(str(version))
    assert "sample_digit" not in loaded.signatures
    inputs = {
        "seeds": tf.constant([1], tf.int64),
        "indices": tf.constant([0], tf.int64),
        "temperatures": tf.constant([1.0]),
    }
    ok = loaded.signatures["sample_batch"](digits=tf.constant([-1]), **inputs)
    assert ok["images"].shape == (1, 28, 28)
    with pytest.raises(tf.errors.InvalidArgumentError, match="digits must be -1..-1"):
        loaded.signatures["sample_batch"](digits=tf.constant([3]), **inputs)
