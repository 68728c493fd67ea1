"""Presets are validated when they are made, so a bad run fails in its first second; resumable
state is keyed by the whole configuration."""

from __future__ import annotations

import math

import pytest

from training.cli import parse_args
from training.distribute import Strategy
from training.presets import PRESETS, LrSchedule, PresetError, PriorKind, get_preset, make_preset


@pytest.mark.parametrize("preset", PRESETS.values(), ids=PRESETS.keys())
def test_every_preset_is_valid_and_survives_its_metadata_round_trip(preset):
    assert make_preset(**preset.to_dict()) == preset
    assert preset.override(epochs=preset.epochs + 1).epochs == preset.epochs + 1
    assert preset.override(epochs=None) == preset


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -3}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (500, 0)}, "hidden.1"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"prior": "gaussian"}, "prior"),
        ({"components_per_digit": -1}, "components_per_digit"),
        ({"seed": -1}, "seed"),
        ({"epochs": 2.5}, "epochs"),
        ({"prior": "fitted", "components_per_digit": 0}, "components_per_digit > 0"),
        ({"epochs": 1, "kl_warmup_epochs": 2}, "kl_warmup_epochs=2 is more than epochs=1"),
        ({"colour": "blue"}, "unknown hyperparameter(s): colour"),
    ],
)
def test_an_invalid_value_is_refused_with_a_message_naming_it(changes, field):
    with pytest.raises(PresetError) as error:
        get_preset("default").override(**changes)
    assert field in str(error.value)


def test_an_unknown_preset_lists_the_known_ones():
    known = "seed, default, default-v1, benchmark, tiny"
    with pytest.raises(PresetError, match=f"choose one of {known}"):
        get_preset("huge")


def test_the_fingerprint_changes_with_any_setting_and_only_then():
    tiny = get_preset("tiny")
    assert tiny.fingerprint(train_limit=None) == get_preset("tiny").fingerprint(train_limit=None)
    others = {
        tiny.override(seed=1).fingerprint(train_limit=None),
        tiny.override(learning_rate=5e-4).fingerprint(train_limit=None),
        tiny.override(hidden=(256,)).fingerprint(train_limit=None),
        tiny.fingerprint(train_limit=1000),
    }
    assert tiny.fingerprint(train_limit=None) not in others and len(others) == 4


def test_cli_choices_are_the_enums():
    args = parse_args(["--lr-schedule", "cosine", "--prior", "standard", "--strategy", "mirrored"])
    assert (args.lr_schedule, args.prior, args.strategy) == (
        LrSchedule.COSINE,
        PriorKind.STANDARD,
        Strategy.MIRRORED,
    )
    for flag, enum in (
        ("--lr-schedule", LrSchedule),
        ("--prior", PriorKind),
        ("--strategy", Strategy),
    ):
        with pytest.raises(SystemExit):
            parse_args([flag, "nope"])
        for member in enum:
            parse_args([flag, member.value])
