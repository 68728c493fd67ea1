"""The evaluation pictures: samples, reconstructions, a latent traversal, a 2-D map of the test
encodings, per-digit samples and training curves, written to ``<folder>/report/``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vae_contract import REPORT_DIR, Signature  # noqa: E402


def tile(images: np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """[N, 28, 28] -> one image with ``nrow`` digits per row and black gaps."""
    n, h, w = images.shape
    rows = -(-n // nrow)
    canvas = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, nrow)
        canvas[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = image
    return canvas


def save_grid(path: Path, images: np.ndarray, nrow: int, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(nrow * 0.45 + 0.5, -(-len(images) // nrow) * 0.45 + 0.7))
    ax.imshow(tile(images, nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def traversal(signatures, mu: np.ndarray, steps: int = 9, dims: int = 8) -> np.ndarray:
    """Rows: the most active latent dimensions; columns: that coordinate swept ±2.5 σ
    around one test digit's code."""
    std = mu.std(axis=0)
    order = np.argsort(-std)[:dims]
    codes = np.repeat(mu[:1], dims * steps, axis=0)
    for row, dim in enumerate(order):
        codes[row * steps : (row + 1) * steps, dim] += np.linspace(-2.5, 2.5, steps) * std[dim]
    return signatures[Signature.DECODE](z=tf.constant(codes))["images"].numpy()


def latent_map(path: Path, mu: np.ndarray, labels: np.ndarray) -> Path:
    """Test encodings projected on their two principal axes, coloured by digit."""
    centred = mu - mu.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_title("Test-set encodings (μ), first two principal axes", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(path: Path, history: dict[str, list[float]]) -> Path | None:
    if not history.get("loss"):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, title in zip(
        axes, ("loss", "reconstruction", "kl"), ("−ELBO", "reconstruction", "KL"), strict=True
    ):
        epochs = range(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        ax.plot(epochs, history.get(f"val_{key}", []), label="test")
        ax.set_title(f"{title} (nats per digit)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_all(
    folder: Path,
    signatures,
    x_test: np.ndarray,
    y_test: np.ndarray,
    arrays: dict[str, np.ndarray],
    history: dict[str, list[float]],
) -> list[Path]:
    """Every picture of the report, into ``folder/report/``; returns their paths."""
    out = Path(folder) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    pairs = np.concatenate([x_test[:16], arrays["recon"][:16]])
    written = [
        save_grid(out / "samples.png", arrays["samples"][:64], 8, "Random samples"),
        save_grid(
            out / "reconstructions.png",
            pairs,
            16,
            "Test digits (top) and their reconstructions (bottom)",
        ),
        save_grid(
            out / "traversal.png",
            traversal(signatures, arrays["mu"]),
            9,
            "Latent traversal: one dimension per row",
        ),
        latent_map(out / "latent_map.png", arrays["mu"], y_test),
    ]
    if "digits" in arrays:
        written.append(
            save_grid(
                out / "digits.png",
                arrays["digits"].reshape(-1, 28, 28),
                10,
                "Digit-conditional samples: one digit per row",
            )
        )
    curves = training_curves(out / "training_curves.png", history)
    return written + ([curves] if curves else [])
