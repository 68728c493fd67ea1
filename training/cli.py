"""``vae-train``: train a preset on MNIST and export it for the service."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.data import DEFAULT_DATA_DIR, DataError
from training.distribute import Strategy
from training.presets import (
    DEFAULT_PRESET,
    PRESETS,
    DataKind,
    LrSchedule,
    Preset,
    PresetError,
    PriorKind,
    get_preset,
)
from training.stopping import Stopped, stop_signals
from vae_contract import list_versions, model_base


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def layer_sizes(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated layer sizes, e.g. ``500,500``."""
    return tuple(int(unit) for unit in text.split(","))


def add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    """The evaluation's size (shared by vae-train and vae-eval); defaults take about a minute."""
    group = parser.add_argument_group("evaluation")
    group.add_argument(
        "--iwae-k",
        type=positive_int,
        default=1000,
        help="importance samples per test digit for the IWAE bound (%(default)s)",
    )
    group.add_argument(
        "--iwae-examples",
        type=positive_int,
        default=1000,
        help="test digits for the IWAE bound (%(default)s; 10000: all)",
    )
    group.add_argument(
        "--eval-samples",
        type=positive_int,
        default=10000,
        help="random samples judged by the classifier (%(default)s)",
    )
    group.add_argument(
        "--samples-per-digit",
        type=positive_int,
        default=1000,
        help="digit-conditional samples per digit (%(default)s)",
    )
    group.add_argument(
        "--binarized-k",
        type=positive_int,
        help="importance samples per binarized test digit for the literature's NLL "
        "(vae-train: 500 for binarized presets, else not computed; vae-eval --protocol "
        "binarized: 5000)",
    )
    group.add_argument(
        "--binarized-examples",
        type=positive_int,
        default=10000,
        help="binarized test digits for that NLL (%(default)s: all)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vae-train",
        description="Train the MNIST variational autoencoder and export a versioned SavedModel.",
    )
    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        choices=sorted(PRESETS),
        help=f"hyperparameter preset (default: {DEFAULT_PRESET}; 'seed' is Géron's model)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("model"),
        help="base folder; the export goes to MODEL_DIR/vae/<version>/",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder with mnist.npz or the IDX files; fetched MNIST is cached here "
        "(default: $VAE_DATA_DIR or %(default)s)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue this configuration's interrupted run (Ctrl-C, SIGTERM, "
        "crash) from its last finished epoch; without one, start from scratch",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when MODEL_DIR/vae/ already holds a model",
    )
    parser.add_argument(
        "--train-limit",
        type=positive_int,
        help="train on the first N training images only (quick runs)",
    )

    hyper = parser.add_argument_group("hyperparameters (override the preset's)")
    hyper.add_argument("--epochs", type=int)
    hyper.add_argument("--batch-size", type=int, help="global batch, split among replicas")
    hyper.add_argument("--learning-rate", type=float)
    hyper.add_argument("--lr-schedule", choices=[s.value for s in LrSchedule])
    hyper.add_argument("--kl-warmup-epochs", type=int)
    hyper.add_argument("--kl-weight", type=float, help="β, the KL term's final weight (0 < β ≤ 1)")
    hyper.add_argument(
        "--iwae-samples", type=int, help="importance samples in the training objective (1: ELBO)"
    )
    hyper.add_argument(
        "--data",
        choices=[d.value for d in DataKind],
        help="grey levels, or dynamically binarized digits (the literature's protocol)",
    )
    hyper.add_argument("--pseudo-inputs", type=int, help="VampPrior pseudo-inputs (--prior vamp)")
    hyper.add_argument("--latent-dim", type=int)
    hyper.add_argument(
        "--hidden", type=layer_sizes, help="hidden layer sizes, comma-separated, e.g. 500,500"
    )
    hyper.add_argument("--prior", choices=[p.value for p in PriorKind])
    hyper.add_argument("--components-per-digit", type=int)
    hyper.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        help="XLA-compile the training step (single-device runs)",
    )
    hyper.add_argument("--seed", type=int, help="random seed (repeatable runs on one machine)")

    where = parser.add_argument_group("devices")
    where.add_argument(
        "--strategy",
        choices=[s.value for s in Strategy],
        default=Strategy.DEFAULT.value,
        help="default: one device; mirrored: every local GPU (or --cpu-devices); "
        "multiworker: the cluster in TF_CONFIG (default: %(default)s)",
    )
    where.add_argument(
        "--cpu-devices",
        type=positive_int,
        help="with --strategy mirrored on a machine without GPU: split the CPU "
        "into N logical devices",
    )

    parser.add_argument(
        "--no-eval", action="store_true", help="publish without the evaluation (about a minute)"
    )
    add_evaluation_options(parser)
    args = parser.parse_args(argv)
    args.strategy = Strategy(args.strategy)
    if args.cpu_devices and args.strategy is not Strategy.MIRRORED:
        parser.error("--cpu-devices needs --strategy mirrored")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vae-train`` and ``python -m training``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        preset = get_preset(args.preset).override(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            lr_schedule=args.lr_schedule,
            kl_warmup_epochs=args.kl_warmup_epochs,
            kl_weight=args.kl_weight,
            iwae_samples=args.iwae_samples,
            data=args.data,
            pseudo_inputs=args.pseudo_inputs,
            latent_dim=args.latent_dim,
            hidden=args.hidden,
            prior=args.prior,
            components_per_digit=args.components_per_digit,
            jit_compile=args.jit_compile,
            seed=args.seed,
        )
    except PresetError as error:
        print(f"vae-train: {error}", file=sys.stderr)
        return 2
    if args.if_missing and list_versions(model_base(args.model_dir)):
        print(f"{model_base(args.model_dir)} already holds a model; not training.")
        return 0

    stop_signals.install()
    try:
        return run(args, preset)
    except DataError as error:
        print(f"vae-train: {error}", file=sys.stderr)
        return 1
    except Stopped as stop:
        print(
            f"\nStopped by {stop}: run the same command with --resume to continue from the "
            "last finished epoch.",
            file=sys.stderr,
        )
        return stop.exit_code


def run(args: argparse.Namespace, preset: Preset) -> int:
    """Load TensorFlow, set up the devices and strategy, train and export."""
    from vae_contract.quiet import import_tensorflow

    import_tensorflow()
    from training.distribute import configure_devices, make_strategy

    print(configure_devices(args.cpu_devices), flush=True)
    try:
        strategy = make_strategy(args.strategy)
    except ValueError as error:
        print(f"vae-train: {error}", file=sys.stderr)
        return 2

    from training.evaluate import EvalConfig
    from training.train import train

    evaluation = (
        None
        if args.no_eval
        else EvalConfig(
            iwae_k=args.iwae_k,
            iwae_examples=args.iwae_examples,
            samples=args.eval_samples,
            samples_per_digit=args.samples_per_digit,
            binarized_k=args.binarized_k or 0,
            binarized_examples=args.binarized_examples,
        )
    )
    train(
        preset, args.model_dir, args.data_dir, args.resume, args.train_limit, evaluation, strategy
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
