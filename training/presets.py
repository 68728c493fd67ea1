"""Training presets: every hyperparameter of a run, by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Preset:
    """All the knobs of one training run. ``seed`` reproduces Géron's model exactly."""

    name: str
    latent_dim: int = 20
    hidden: tuple[int, ...] = (500, 500)
    epochs: int = 50
    batch_size: int = 150
    learning_rate: float = 1e-3
    # "constant" (the seed) or "cosine": warm-up-free cosine decay to 0 over the run.
    lr_schedule: str = "constant"
    # Linear KL warm-up over this many epochs (0: the full KL term from the start).
    kl_warmup_epochs: int = 0
    # Prior that random samples are drawn from: "standard" N(0, I) (the seed), or "fitted":
    # a Gaussian mixture fitted to the training set's encodings after training.
    prior: str = "standard"
    # Mixture components per digit class for the fitted prior and digit-conditional sampling
    # (0: no per-digit prior, so the export has no digit-conditional signature).
    components_per_digit: int = 10
    # XLA-compile the training step (same maths, faster on CPU).
    jit_compile: bool = False
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict, as written to the model metadata."""
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    def override(self, **changes: Any) -> Preset:
        """A copy with the given fields changed; ``None`` values are ignored."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PRESETS: dict[str, Preset] = {
    # Géron, Hands-On ML ch. 15 (after Kingma & Welling 2014): MLP 784-500-500-20, ELU, He init,
    # Adam 1e-3, batch 150, 50 epochs, samples from N(0, I).
    "seed": Preset(name="seed"),
    # The default: same network, trained in fewer, larger and compiled steps with a decaying
    # learning rate and a short KL warm-up; samples come from a prior fitted to the encodings.
    "default": Preset(
        name="default",
        epochs=25,
        batch_size=256,
        learning_rate=2e-3,
        lr_schedule="cosine",
        kl_warmup_epochs=2,
        prior="fitted",
        jit_compile=True,
    ),
    # A few seconds of training for tests and smoke runs; same code path as the others.
    "tiny": Preset(name="tiny", epochs=2, batch_size=256, hidden=(256, 256), prior="fitted",
                   components_per_digit=3, jit_compile=True),
}
DEFAULT_PRESET = "default"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
