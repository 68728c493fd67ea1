"""Training benchmark: `seed`, `default-v1` (the default until issue 18) and `default` trained
and evaluated in one run, the new default checked against its targets.

Prints one table (time, likelihood, sample quality) with the targets, writes the figures to
JSON and, with --pictures, copies each model's report pictures and draws a side-by-side
picture of random samples. ``--benchmark`` also trains the `benchmark` preset (about 2 hours on
2 cores) and scores it on the literature's protocol (k = 5000 on 10,000 binarized test digits,
another 30-50 minutes); ``--benchmark-model DIR`` puts an existing export of it in the picture
and the table instead.

    python benchmarks/train_bench.py [--data-dir data] [--out runs/bench] [--pictures docs/images]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from training.evaluate import EvalConfig
from training.presets import get_preset
from training.train import train
from vae_contract import REPORT_DIR, ModelMetadata, list_versions, model_base

ROWS = [
    ("training_seconds", "training time, wall (s)", "{:.0f}"),
    ("cpu_seconds", "CPU time of the whole run, training and evaluation (s)", "{:.0f}"),
    ("test_neg_elbo", "test −ELBO, training prior's KL (nats)", "{:.2f}"),
    ("test_nll_iwae", "test NLL bound, IWAE k=1000, grey levels (nats)", "{:.2f}"),
    ("binarized_nll", "test NLL, binarized MNIST, IWAE (nats)", "{}"),
    ("test_neg_elbo_mc", "test −ELBO under the sampling prior (nats)", "{:.2f}"),
    ("active_units", "active latent units", "{}"),
    ("sample_confident_share", "samples with confidence > 0.9", "{:.1%}"),
    ("sample_inception_score", "Inception-style score", "{:.2f}"),
    ("sample_frechet_distance", "Fréchet distance to test set", "{:.2f}"),
    ("reconstruction_class_kept", "reconstructions keeping their class", "{:.1%}"),
    ("digit_accuracy_min", "digit-conditional accuracy, worst digit", "{:.1%}"),
]
SIDE_BY_SIDE_SEED = 7  # the seed of the random samples in the side-by-side picture


def figures_of(version_dir: Path) -> dict:
    """The figures a published version carries in its metadata."""
    metadata = ModelMetadata.read(version_dir)
    figures = {
        "version_dir": str(version_dir),
        "training_seconds": metadata.training_seconds,
        **metadata.metrics,
        **metadata.evaluation,
    }
    if "binarized" in figures:
        b = figures["binarized"]
        figures["binarized_nll"] = f"{b['nll']:.2f} ± {b['stderr']:.2f} (k={b['k']})"
    return figures


def run(preset_name: str, out: Path, data_dir: str | None, config: EvalConfig) -> dict:
    """Train, evaluate and export one preset; returns its figures with the run's wall and
    CPU time (this process's, every thread: training, export and evaluation)."""
    started, cpu = time.perf_counter(), time.process_time()
    version_dir = train(get_preset(preset_name), out / preset_name, data_dir, evaluation=config)
    assert version_dir is not None
    return {
        **figures_of(version_dir),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }


def targets(results: dict) -> list[tuple[str, bool]]:
    """Issue 18's targets for the new default, against the old one measured in the same run;
    and the earlier ones against the seed."""
    checks = []
    if "default" not in results:
        return checks
    new = results["default"]
    checks += [
        ("samples ≥ 97% confident", new["sample_confident_share"] >= 0.97),
        ("every digit ≥ 95% the asked one", new.get("digit_accuracy_min", 0) >= 0.95),
        ("training ≤ 3 minutes (180 s)", new["training_seconds"] <= 180),
    ]
    if "default-v1" in results:
        old = results["default-v1"]
        checks.append(
            (
                "Fréchet distance ≤ 1/2 of default-v1's",
                new["sample_frechet_distance"] <= old["sample_frechet_distance"] / 2,
            )
        )
    if "seed" in results:
        seed = results["seed"]
        checks += [
            (
                "Fréchet distance ≤ 1/3 of seed's",
                new["sample_frechet_distance"] <= seed["sample_frechet_distance"] / 3,
            ),
            (
                "training time ≤ 1/2 of seed's",
                new["training_seconds"] <= seed["training_seconds"] / 2,
            ),
        ]
    return checks


def side_by_side(path: Path, versions: dict[str, Path], count: int = 64) -> Path:
    """Random samples of each version (same seed, temperature 1), one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from training.report import tile

    fig, axes = plt.subplots(1, len(versions), figsize=(3.9 * len(versions), 4.3))
    for ax, (name, version_dir) in zip(np.atleast_1d(axes), versions.items(), strict=True):
        sample = tf.saved_model.load(str(version_dir)).signatures["sample"]
        images = sample(
            count=tf.constant(count),
            seed=tf.constant(SIDE_BY_SIDE_SEED, tf.int64),
            temperature=tf.constant(1.0),
        )["images"].numpy()
        ax.imshow(tile(images, 8), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=11)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def newest(model_dir: Path) -> Path:
    """The newest published version under ``model_dir``."""
    versions = list_versions(model_base(model_dir))
    if not versions:
        raise SystemExit(f"no model version in {model_base(model_dir)}")
    return model_base(model_dir) / str(versions[-1])


def benchmark(out: Path, data_dir: str | None, iwae_examples: int) -> dict:
    """Train the benchmark preset and score it on the literature's protocol (k = 5000)."""
    config = EvalConfig(iwae_k=1000, iwae_examples=iwae_examples, binarized_k=5000)
    return run("benchmark", out, data_dir, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--presets", default="seed,default-v1,default")
    parser.add_argument("--iwae-examples", type=int, default=2000)
    parser.add_argument("--pictures", type=Path, help="copy report pictures here")
    parser.add_argument(
        "--benchmark", action="store_true", help="also train the benchmark preset (2 hours)"
    )
    parser.add_argument(
        "--benchmark-model", type=Path, help="an existing export of the benchmark preset"
    )
    args = parser.parse_args()

    config = EvalConfig(iwae_k=1000, iwae_examples=args.iwae_examples)
    names = args.presets.split(",")
    if args.out.exists():
        shutil.rmtree(args.out)
    results = {name: run(name, args.out, args.data_dir, config) for name in names}
    if args.benchmark:
        results["benchmark"] = benchmark(args.out, args.data_dir, args.iwae_examples)
    elif args.benchmark_model:
        results["benchmark"] = figures_of(newest(args.benchmark_model))
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    columns = list(results)
    print("\n| figure | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key, label, fmt in ROWS:
        cells = [fmt.format(results[n][key]) if key in results[n] else "–" for n in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if {"default", "default-v1"} <= set(results):
        new, old = results["default"], results["default-v1"]
        print(
            f"\ndefault against default-v1: training time "
            f"{new['training_seconds'] / old['training_seconds']:.2f}x, Fréchet distance "
            f"{new['sample_frechet_distance'] / old['sample_frechet_distance']:.2f}x"
        )
    for label, ok in targets(results):
        print(f"  [{'x' if ok else ' '}] {label}")

    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
        for name in names:
            for picture in (Path(results[name]["version_dir"]) / REPORT_DIR).glob("*.png"):
                shutil.copy(picture, args.pictures / f"{name}-{picture.name}")
        versions = {name: Path(result["version_dir"]) for name, result in results.items()}
        print(f"Wrote {side_by_side(args.pictures / 'side-by-side.png', versions)}")


if __name__ == "__main__":
    main()
