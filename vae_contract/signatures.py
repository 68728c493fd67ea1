"""The SavedModel's signatures, described once: names, inputs, outputs, dtypes and shapes.

Everything else derives from ``SIGNATURES``: the export builds its ``tf.TensorSpec``s from it,
the service checks every version it loads against it, the tests' stand-in model and the warm-up
requests are made from it, and request builders check their columns against it.

Shapes are written with symbols: ``N`` any number of rows (the batch), ``K`` any number of
importance samples, ``D`` the model's ``latent_dim``. ``spec(latent_dim)`` gives the concrete
shapes, ``None`` where any size goes, as TensorFlow reports them.

Sampling is seeded and stateless: row i of ``sample_batch`` is image ``indices[i]`` of
``sample`` (or ``sample_digit``) with seed ``seeds[i]``, keyed by (seed, index) alone, so a
server can answer many requests with one call and each gets what it would get alone. The draws
of ``log_weights`` are keyed by its seed alone, so an image's weights do not depend on the
other images of the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

import numpy as np

from vae_contract.layout import IMAGE_SHAPE


class Signature(StrEnum):
    """The SavedModel's signature names."""

    DECODE = "decode"
    ENCODE = "encode"
    SAMPLE = "sample"
    SAMPLE_DIGIT = "sample_digit"
    SAMPLE_BATCH = "sample_batch"
    LOG_WEIGHTS = "log_weights"


SERVING_DEFAULT = "serving_default"  # TensorFlow Serving's default signature: ``decode``
ANY_DIGIT = -1  # ``sample_batch``'s ``digits`` value for "any digit"

N: Final = "N"
K: Final = "K"
D: Final = "D"
Dim = int | Literal["N", "K", "D"]


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of a loaded signature: dtype and shape (None: any size)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    @property
    def batched(self) -> bool:
        """True when the first dimension is the batch (one row per example)."""
        return len(self.shape) > 0 and self.shape[0] is None


@dataclass(frozen=True)
class SignatureSpec:
    """A loaded signature's inputs and outputs."""

    name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    @property
    def batched(self) -> bool:
        """Rows of several requests can be merged into one call: every input is batched."""
        return all(spec.batched for spec in self.inputs.values())


@dataclass(frozen=True)
class Tensor:
    """An input or output as the contract writes it: shape in symbols, and the value that
    warm-up requests fill it with."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    example: float = 0

    def spec(self, latent_dim: int) -> TensorSpec:
        """The concrete spec for a model with this ``latent_dim``."""
        dims = tuple(
            latent_dim if d == D else d if isinstance(d, int) else None for d in self.shape
        )
        return TensorSpec(self.name, np.dtype(self.dtype), dims)


@dataclass(frozen=True)
class SignatureContract:
    """One signature of the contract."""

    name: Signature
    summary: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    required: bool = True  # the service refuses a version without it

    def spec(self, latent_dim: int) -> SignatureSpec:
        """Concrete inputs and outputs for a model with this ``latent_dim``."""
        return SignatureSpec(
            self.name,
            {t.name: t.spec(latent_dim) for t in self.inputs},
            {t.name: t.spec(latent_dim) for t in self.outputs},
        )

    def arrays(self, **columns: object) -> dict[str, np.ndarray]:
        """Inputs for a call: exactly this signature's input names, each as its dtype."""
        names = [t.name for t in self.inputs]
        if sorted(columns) != sorted(names):
            raise TypeError(f"{self.name} takes {', '.join(names)}; got {', '.join(columns)}")
        return {t.name: np.asarray(columns[t.name], t.dtype) for t in self.inputs}

    def example_inputs(
        self, latent_dim: int, rows: int = 2, **values: float
    ) -> dict[str, np.ndarray]:
        """Small valid inputs (``rows`` rows; ``values`` replace the examples by name), as
        warm-up requests send them."""
        sizes = {N: rows, K: rows, D: latent_dim}
        return {
            t.name: np.full(
                tuple(sizes.get(d, d) for d in t.shape),  # type: ignore[arg-type]
                values.get(t.name, t.example),
                t.dtype,
            )
            for t in self.inputs
        }

    def mismatches(self, spec: SignatureSpec, latent_dim: int) -> list[str]:
        """How a loaded signature differs from the contract (empty: it keeps it)."""
        wanted = self.spec(latent_dim)
        problems = []
        for kind, have, want in (
            ("input", spec.inputs, wanted.inputs),
            ("output", spec.outputs, wanted.outputs),
        ):
            if set(have) != set(want):
                problems.append(f"{kind}s {sorted(have)}, the contract says {sorted(want)}")
                continue
            for name, expected in want.items():
                got = have[name]
                if (got.dtype, got.shape) != (expected.dtype, expected.shape):
                    problems.append(
                        f"{kind} {name} is {got.dtype}{list(got.shape)}, the contract says "
                        f"{expected.dtype}{list(expected.shape)}"
                    )
        return problems


IMAGES = Tensor("images", "float32", (N, *IMAGE_SHAPE))
SAMPLED = (Tensor("latents", "float32", (N, D)), IMAGES)
SAMPLE_SCALARS = (
    Tensor("count", "int32", (), example=2),
    Tensor("seed", "int64", ()),
    Tensor("temperature", "float32", (), example=1.0),
)

SIGNATURES: dict[str, SignatureContract] = {
    contract.name: contract
    for contract in (
        SignatureContract(
            Signature.DECODE,
            "codes to images in [0, 1], white on black (also serving_default)",
            (Tensor("z", "float32", (N, D)),),
            (IMAGES,),
        ),
        SignatureContract(
            Signature.ENCODE,
            "images in [0, 1], white on black, to the posterior's μ, σ and log σ²",
            (IMAGES,),
            tuple(Tensor(name, "float32", (N, D)) for name in ("mu", "sigma", "log_var")),
        ),
        SignatureContract(
            Signature.SAMPLE,
            "count images drawn from the sampling prior with a seed; temperature scales its σ",
            SAMPLE_SCALARS,
            SAMPLED,
            required=False,
        ),
        SignatureContract(
            Signature.SAMPLE_DIGIT,
            "as sample, from the prior of one digit (0..9); only with a per-digit prior",
            (*SAMPLE_SCALARS, Tensor("digit", "int32", ())),
            SAMPLED,
            required=False,
        ),
        SignatureContract(
            Signature.SAMPLE_BATCH,
            "one image per row: image indices[i] of sample (or sample_digit) with seeds[i]; "
            "digits[i] = -1 for any digit",
            (
                Tensor("seeds", "int64", (N,)),
                Tensor("indices", "int64", (N,)),
                Tensor("temperatures", "float32", (N,), example=1.0),
                Tensor("digits", "int32", (N,), example=ANY_DIGIT),
            ),
            SAMPLED,
        ),
        SignatureContract(
            Signature.LOG_WEIGHTS,
            "log p(x|z) + log p(z) − log q(z|x) for samples draws z ~ q(z|x) per image, keyed "
            "by the seed alone",
            (IMAGES, Tensor("samples", "int32", (), example=2), Tensor("seed", "int64", ())),
            (Tensor("log_weights", "float32", (N, K)),),
        ),
    )
}
REQUIRED_SIGNATURES = tuple(name for name, contract in SIGNATURES.items() if contract.required)
