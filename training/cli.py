"""``vae-train``: train a preset on MNIST and export it for the service."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.data import DEFAULT_DATA_DIR, DataError
from training.presets import DEFAULT_PRESET, PRESETS, get_preset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vae-train",
        description="Train the MNIST variational autoencoder and export a versioned SavedModel.",
    )
    parser.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
        help=f"hyperparameter preset (default: {DEFAULT_PRESET}; 'seed' is Géron's model)",
    )
    parser.add_argument("--model-dir", type=Path, default=Path("model"),
                        help="base folder; the export goes to MODEL_DIR/vae/<version>/")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder with mnist.npz or the IDX files; fetched MNIST is cached here "
                        "(default: $VAE_DATA_DIR or %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run of the same preset from its checkpoint")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--learning-rate", type=float, help="override the preset's learning rate")
    parser.add_argument("--latent-dim", type=int, help="override the preset's latent size")
    parser.add_argument("--hidden", type=lambda s: tuple(int(u) for u in s.split(",")),
                        help="hidden layer sizes, comma-separated, e.g. 500,500")
    parser.add_argument("--seed", type=int, help="random seed (repeatable runs on one machine)")
    parser.add_argument("--train-limit", type=int,
                        help="train on the first N training images only (quick runs)")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the evaluation report after export")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when MODEL_DIR/vae/ already holds a model")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vae-train`` and ``python -m training``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from training.export import MODEL_NAME, existing_versions  # TensorFlow loads here

    if args.if_missing and existing_versions(args.model_dir / MODEL_NAME):
        print(f"{args.model_dir / MODEL_NAME} already holds a model; not training.")
        return 0
    try:
        preset = get_preset(args.preset).override(
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
            latent_dim=args.latent_dim, hidden=args.hidden, seed=args.seed,
        )
    except ValueError as error:
        print(f"vae-train: {error}", file=sys.stderr)
        return 2

    from training.train import train

    try:
        version_dir = train(preset, args.model_dir, args.data_dir, args.resume, args.train_limit)
    except DataError as error:
        print(f"vae-train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted: run again with --resume to continue from the last epoch.",
              file=sys.stderr)
        return 130
    if not args.no_eval:
        from training.evaluate import evaluate_export

        evaluate_export(version_dir, data_dir=args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
