"""The loss against a hand computation, and the presets' contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.model import build_vae, negative_elbo_terms
from training.presets import PRESETS, get_preset


def test_negative_elbo_terms_match_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 28, 28)).astype(np.float32)
    logits = rng.normal(size=(2, 28, 28)).astype(np.float32)
    mu = rng.normal(size=(2, 3)).astype(np.float32)
    log_var = rng.normal(size=(2, 3)).astype(np.float32)

    reconstruction, kl = negative_elbo_terms(x, logits, mu, log_var)

    for i in range(2):
        p = 1 / (1 + np.exp(-logits[i].astype(np.float64)))
        expected_rec = -np.sum(x[i] * np.log(p) + (1 - x[i]) * np.log(1 - p))
        expected_kl = sum(
            0.5 * (math.exp(g) + m * m - 1 - g) for m, g in zip(mu[i], log_var[i], strict=True)
        )
        assert reconstruction[i].numpy() == pytest.approx(expected_rec, rel=1e-4)
        assert kl[i].numpy() == pytest.approx(expected_kl, rel=1e-5)


def test_kl_is_zero_for_the_prior_itself():
    _, kl = negative_elbo_terms(
        np.zeros((1, 28, 28), np.float32), np.zeros((1, 28, 28), np.float32),
        np.zeros((1, 20), np.float32), np.zeros((1, 20), np.float32),
    )
    assert kl.numpy()[0] == pytest.approx(0.0)


def test_seed_preset_is_geron_model():
    seed = get_preset("seed")
    assert (seed.latent_dim, seed.hidden, seed.epochs, seed.batch_size) == (20, (500, 500), 50, 150)
    assert (seed.learning_rate, seed.lr_schedule, seed.kl_warmup_epochs) == (1e-3, "constant", 0)
    assert seed.prior == "standard"
    vae = build_vae(seed, steps_per_epoch=400)
    layers = {layer.name: layer for layer in vae.encoder.layers + vae.decoder.layers}
    assert [layers[n].units for n in ("enc_hidden1", "enc_hidden2", "mu", "log_var")] == [
        500, 500, 20, 20]
    assert [layers[n].units for n in ("dec_hidden1", "dec_hidden2", "logits")] == [500, 500, 784]
    assert layers["enc_hidden1"].activation.__name__ == "elu"
    assert type(layers["enc_hidden1"].kernel_initializer).__name__ == "HeNormal"


def test_every_preset_overrides_and_rejects_unknown_fields():
    for preset in PRESETS.values():
        assert preset.override(epochs=1).epochs == 1
        assert preset.override(epochs=None).epochs == preset.epochs
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        get_preset("seed").override(colour="blue")
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")
