"""Training presets: every hyperparameter of a run, by name, validated when built.

A ``Preset`` is checked field by field when it is made (also by ``override``), so a bad value
stops ``vae-train`` in its first second with a message naming the field, not after training.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class LrSchedule(StrEnum):
    """How the learning rate moves over the run."""

    CONSTANT = "constant"  # the seed model
    COSINE = "cosine"  # cosine decay to 0 over the run, no warm-up


class PriorKind(StrEnum):
    """The prior that random samples are drawn from."""

    STANDARD = "standard"  # N(0, I), the seed model
    FITTED = "fitted"  # a Gaussian mixture fitted per digit to the training encodings
    # VampPrior (Tomczak & Welling, 2018): the mixture of the encoder's posteriors at learned
    # pseudo-inputs, trained with the model; the likelihood bounds and random samples use it.
    VAMP = "vamp"


class DataKind(StrEnum):
    """What the model is trained on (the likelihood is Bernoulli in both)."""

    GREY = "grey"  # grey levels in [0, 1], as the seed model
    # Dynamically binarized: every training pass draws new binary digits, pixel ~ Bernoulli(grey
    # level); the test set is binarized once with a fixed seed (training.protocol). The
    # literature's protocol (Burda et al., 2016).
    BINARIZED = "binarized"


class PresetError(ValueError):
    """A preset or override with a value that cannot train; the message names the field."""


class Preset(BaseModel):
    """All the knobs of one training run. ``seed`` reproduces Géron's model exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    latent_dim: int = Field(20, ge=1)
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field((500, 500), min_length=1)
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(150, ge=1)
    learning_rate: float = Field(1e-3, gt=0, allow_inf_nan=False)
    lr_schedule: LrSchedule = LrSchedule.CONSTANT
    # Linear KL warm-up over this many epochs (0: the full KL term from the start).
    kl_warmup_epochs: int = Field(0, ge=0)
    # β: the KL term's weight once warmed up (1: the ELBO). Below 1 the encodings spread out
    # and reconstructions sharpen; the fitted prior then samples where the codes are.
    kl_weight: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    # Importance samples per digit in the training objective: 1 is the ELBO, k > 1 the IWAE
    # bound (Burda et al., 2016), tighter, at k decoder passes per digit.
    iwae_samples: int = Field(1, ge=1)
    data: DataKind = DataKind.GREY
    prior: PriorKind = PriorKind.STANDARD
    # Pseudo-inputs of the VampPrior (prior='vamp' only).
    pseudo_inputs: int = Field(0, ge=0)
    # Mixture components per digit class for the fitted prior and digit-conditional sampling
    # (0: no per-digit prior, so the export has no digit-conditional signature).
    components_per_digit: int = Field(10, ge=0)
    # XLA-compile the training step (same maths, faster on CPU; single-device runs only).
    jit_compile: bool = False
    # scikit-learn's mixtures take seeds in [0, 2**32).
    seed: int = Field(42, ge=0, lt=2**32)

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        if self.prior is PriorKind.FITTED and self.components_per_digit == 0:
            raise ValueError(
                "prior='fitted' needs components_per_digit > 0: the mixture is fitted per digit"
            )
        if (self.prior is PriorKind.VAMP) != (self.pseudo_inputs > 0):
            raise ValueError(
                "prior='vamp' needs pseudo_inputs > 0, and pseudo_inputs are for prior='vamp' only"
            )
        if self.kl_warmup_epochs > self.epochs:
            raise ValueError(
                f"kl_warmup_epochs={self.kl_warmup_epochs} is more than epochs={self.epochs}: "
                "the KL term would never reach its full weight"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict, as written to the model metadata."""
        return self.model_dump(mode="json")

    def override(self, **changes: Any) -> Preset:
        """A validated copy with the given fields changed; ``None`` values are ignored."""
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise PresetError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
        return make_preset(
            **{**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        )

    def fingerprint(self, **extra: Any) -> str:
        """A short hash of every hyperparameter (and ``extra``, e.g. the training-set size):
        two runs share it only when they would train the same way."""
        text = json.dumps({**self.to_dict(), **extra}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def make_preset(**fields: Any) -> Preset:
    """``Preset(**fields)``, with one short line per invalid field in the error."""
    try:
        return Preset(**fields)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            got = "" if not where else f" (got {item['input']!r})"
            problems.append(f"{where}: {message}{got}" if where else message)
        raise PresetError("invalid preset: " + "; ".join(problems)) from None


PRESETS: dict[str, Preset] = {
    # Géron, Hands-On ML ch. 15 (after Kingma & Welling 2014): MLP 784-500-500-20, ELU, He init,
    # Adam 1e-3, batch 150, 50 epochs, samples from N(0, I).
    "seed": make_preset(name="seed"),
    # The default: same network, trained in fewer, larger and compiled steps with a decaying
    # learning rate and a short KL warm-up; samples come from a prior fitted to the encodings.
    # Sharper than default-v1 at about its cost (docs/results.md): the KL term weighs 1/4
    # (β = 0.25; Fréchet distance 3.82 against 5.88 at β = 1, 10 components) and the fitted
    # prior has 100 full-covariance components per digit (2.83 against 3.23 with 30, refitted
    # to the same model's codes); the fit takes seconds with one BLAS thread (training.prior).
    "default": make_preset(
        name="default",
        epochs=25,
        batch_size=256,
        learning_rate=2e-3,
        lr_schedule=LrSchedule.COSINE,
        kl_warmup_epochs=2,
        kl_weight=0.25,
        prior=PriorKind.FITTED,
        components_per_digit=100,
        jit_compile=True,
    ),
    # The default until issue 18, kept so benchmarks can compare with it.
    "default-v1": make_preset(
        name="default-v1",
        epochs=25,
        batch_size=256,
        learning_rate=2e-3,
        lr_schedule=LrSchedule.COSINE,
        kl_warmup_epochs=2,
        prior=PriorKind.FITTED,
        jit_compile=True,
    ),
    # The literature's protocol (dynamically binarized MNIST, training.protocol), to compare
    # with published VAEs: the default's network with 40 latent units and a VampPrior of 500
    # pseudo-inputs (Tomczak & Welling, 2018), a 3-epoch KL warm-up, 30 epochs (about an hour
    # on 2 cores). docs/results.md has what each choice gave and the time it took.
    "benchmark": make_preset(
        name="benchmark",
        data=DataKind.BINARIZED,
        latent_dim=40,
        epochs=30,
        batch_size=200,
        learning_rate=1e-3,
        lr_schedule=LrSchedule.COSINE,
        kl_warmup_epochs=3,
        prior=PriorKind.VAMP,
        pseudo_inputs=500,
        jit_compile=True,
    ),
    # A few seconds of training for tests and smoke runs; same code path as the others.
    "tiny": make_preset(
        name="tiny",
        epochs=2,
        batch_size=256,
        hidden=(256, 256),
        prior=PriorKind.FITTED,
        components_per_digit=3,
        jit_compile=True,
    ),
}
DEFAULT_PRESET = "default"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
