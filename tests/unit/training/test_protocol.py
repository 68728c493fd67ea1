"""The literature's likelihood protocol (training.protocol): the fixed binary test set, the
IWAE estimate and its standard error, against hand computations (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.presets import DataKind, PresetError, PriorKind, get_preset
from training.protocol import (
    TEST_SEED,
    binarize_test_set,
    log_mean_exp,
    standard_error,
)


def grey_levels(n: int = 200) -> np.ndarray:
    return np.random.default_rng(5).uniform(size=(n, 28, 28)).astype(np.float32)


def test_a_binarized_test_set_is_binary_and_keeps_the_grey_levels_on_average():
    grey = grey_levels()
    binary = binarize_test_set(grey)
    assert binary.dtype == np.float32 and binary.shape == grey.shape
    assert set(np.unique(binary)) <= {0.0, 1.0}
    # Each pixel is Bernoulli(grey): the mean of 156,800 of them is within 4 standard errors.
    sd = math.sqrt(np.mean(grey * (1 - grey)) / grey.size)
    assert abs(binary.mean() - grey.mean()) < 4 * sd
    # Black stays black and white stays white.
    assert binarize_test_set(np.zeros((2, 28, 28))).max() == 0
    assert binarize_test_set(np.ones((2, 28, 28))).min() == 1


def test_the_test_set_binarization_is_fixed_by_its_seed():
    grey = grey_levels()
    np.testing.assert_array_equal(binarize_test_set(grey), binarize_test_set(grey))
    np.testing.assert_array_equal(binarize_test_set(grey), binarize_test_set(grey, TEST_SEED))
    assert not np.array_equal(binarize_test_set(grey), binarize_test_set(grey, TEST_SEED + 1))


def test_log_mean_exp_is_the_iwae_estimate_by_hand():
    log_w = np.array([[-100.0, -101.0, -103.0], [-2.0, -2.0, -2.0]])
    by_hand = [
        math.log((math.exp(-100) + math.exp(-101) + math.exp(-103)) / 3),
        -2.0,
    ]
    np.testing.assert_allclose(log_mean_exp(log_w), by_hand, rtol=1e-12)
    # Large negative weights (thousands of nats) do not underflow to -inf.
    assert log_mean_exp(np.array([[-5000.0, -5000.0]]))[0] == pytest.approx(-5000.0)


def test_standard_error_is_the_sample_deviation_over_root_n():
    values = np.array([80.0, 84.0, 86.0, 90.0])
    mean = values.mean()
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)  # n − 1
    assert standard_error(values) == pytest.approx(sd / 2)
    with pytest.raises(ValueError):
        standard_error(np.array([1.0]))


def test_binarized_data_is_a_preset_choice_recorded_in_the_fingerprint():
    default = get_preset("default")
    binarized = default.override(data="binarized")
    assert binarized.data is DataKind.BINARIZED
    assert binarized.to_dict()["data"] == "binarized"
    assert binarized.fingerprint() != default.fingerprint()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"prior": "vamp"}, "needs pseudo_inputs > 0"),
        ({"pseudo_inputs": 10}, "for prior='vamp' only"),
        ({"kl_weight": 0.0}, "kl_weight"),
        ({"kl_weight": 1.5}, "kl_weight"),
        ({"iwae_samples": 0}, "iwae_samples"),
        ({"data": "colour"}, "data"),
    ],
)
def test_new_hyperparameters_are_validated(changes, message):
    with pytest.raises(PresetError, match=message):
        get_preset("default").override(**changes)


def test_a_vamp_preset_is_valid_with_its_pseudo_inputs():
    preset = get_preset("default").override(prior="vamp", pseudo_inputs=50)
    assert preset.prior is PriorKind.VAMP and preset.pseudo_inputs == 50
