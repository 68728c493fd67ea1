"""Training benchmark: the `seed` and `default` presets trained and evaluated in one run.

Prints one table (time, likelihood, sample quality) with the issue's targets, writes the
figures to JSON and, with --pictures, copies each model's report pictures for the README.

    python benchmarks/train_bench.py [--data-dir data] [--out runs/bench] [--pictures docs/images]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from training.evaluate import EvalConfig
from training.presets import get_preset
from training.train import train
from vae_contract import REPORT_DIR, ModelMetadata

ROWS = [
    ("training_seconds", "training time (s)", "{:.0f}"),
    ("test_neg_elbo", "test −ELBO, N(0, I) KL (nats)", "{:.2f}"),
    ("test_nll_iwae", "test NLL bound, IWAE k=1000 (nats)", "{:.2f}"),
    ("test_neg_elbo_mc", "test −ELBO under the sampling prior (nats)", "{:.2f}"),
    ("active_units", "active latent units", "{}"),
    ("sample_confident_share", "samples with confidence > 0.9", "{:.1%}"),
    ("sample_inception_score", "Inception-style score", "{:.2f}"),
    ("sample_frechet_distance", "Fréchet distance to test set", "{:.2f}"),
    ("reconstruction_class_kept", "reconstructions keeping their class", "{:.1%}"),
    ("digit_accuracy_min", "digit-conditional accuracy, worst digit", "{:.1%}"),
]


def run(preset_name: str, out: Path, data_dir: str | None, config: EvalConfig) -> dict:
    """Train, evaluate and export one preset; returns its figures."""
    started = time.perf_counter()
    version_dir = train(get_preset(preset_name), out / preset_name, data_dir, evaluation=config)
    assert version_dir is not None
    metadata = ModelMetadata.read(version_dir)
    return {
        "version_dir": str(version_dir),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "training_seconds": metadata.training_seconds,
        **metadata.metrics,
        **metadata.evaluation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--presets", default="seed,default")
    parser.add_argument("--iwae-examples", type=int, default=2000)
    parser.add_argument("--pictures", type=Path, help="copy report pictures here")
    args = parser.parse_args()

    config = EvalConfig(iwae_k=1000, iwae_examples=args.iwae_examples)
    names = args.presets.split(",")
    if args.out.exists():
        shutil.rmtree(args.out)
    results = {name: run(name, args.out, args.data_dir, config) for name in names}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    print("\n| figure | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key, label, fmt in ROWS:
        cells = [fmt.format(results[n][key]) if key in results[n] else "–" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")

    if {"seed", "default"} <= set(results):
        seed, default = results["seed"], results["default"]
        checks = [
            ("samples ≥ 90% confident", default["sample_confident_share"] >= 0.9),
            (
                "Fréchet distance ≤ 1/3 of seed's",
                default["sample_frechet_distance"] <= seed["sample_frechet_distance"] / 3,
            ),
            (
                "likelihood bound at least as good as seed's",
                default["test_nll_iwae"] <= seed["test_nll_iwae"],
            ),
            (
                "training time ≤ 1/2 of seed's",
                default["training_seconds"] <= seed["training_seconds"] / 2,
            ),
            ("every digit ≥ 90% right", default.get("digit_accuracy_min", 0) >= 0.9),
        ]
        print(
            f"\ntime ratio default/seed: "
            f"{default['training_seconds'] / seed['training_seconds']:.2f}; "
            f"Fréchet ratio: "
            f"{default['sample_frechet_distance'] / seed['sample_frechet_distance']:.2f}"
        )
        for label, ok in checks:
            print(f"  [{'x' if ok else ' '}] {label}")

    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
        for name, result in results.items():
            for picture in (Path(result["version_dir"]) / REPORT_DIR).glob("*.png"):
                shutil.copy(picture, args.pictures / f"{name}-{picture.name}")


if __name__ == "__main__":
    main()
