"""``vae-eval``: evaluate a published model version again.

A published version is never changed: the figures are printed, and with ``--output DIR`` they
are written to ``DIR/evaluation.json`` and the pictures to ``DIR/report/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training.cli import add_evaluation_options
from training.data import DEFAULT_DATA_DIR, DataError
from vae_contract import METADATA_FILE, list_versions, model_base


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vae-eval``."""
    parser = argparse.ArgumentParser(
        prog="vae-eval",
        description="Evaluate a published model version again (it is never changed: the figures "
        "are printed, and written with the pictures to --output).",
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path("model"), help="base folder holding vae/<version>/"
    )
    parser.add_argument("--version", type=int, help="version to evaluate (default: newest)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--output",
        type=Path,
        help="write evaluation.json and report/*.png here (default: print only)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation's draws")
    parser.add_argument("--no-pictures", action="store_true")
    parser.add_argument(
        "--protocol",
        choices=["grey", "binarized"],
        default="grey",
        help="grey: the project's figures (likelihood of grey levels, sample quality, "
        "pictures); binarized: only the literature's test NLL, dynamically binarized MNIST's "
        "test set binarized with a fixed seed, IWAE with k = 5000 (--binarized-k) on all "
        "10,000 test digits, with its standard error (default: %(default)s)",
    )
    add_evaluation_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    base = model_base(args.model_dir)
    versions = list_versions(base)
    version = args.version or (versions[-1] if versions else None)
    if version not in versions:
        print(f"vae-eval: no model version {version} in {base}", file=sys.stderr)
        return 1
    version_dir = base / str(version)

    from vae_contract.quiet import import_tensorflow

    tf = import_tensorflow()
    from training.data import load_mnist, to_float
    from training.evaluate import EvalConfig, evaluate, format_figures

    try:
        mnist = load_mnist(args.data_dir)
    except DataError as error:
        print(f"vae-eval: {error}", file=sys.stderr)
        return 1
    signatures = tf.saved_model.load(str(version_dir)).signatures
    print(f"Evaluating {version_dir}", flush=True)
    if args.protocol == "binarized":
        return binarized(args, version, signatures, to_float(mnist.x_test))

    config = EvalConfig(
        iwae_k=args.iwae_k,
        iwae_examples=args.iwae_examples,
        samples=args.eval_samples,
        samples_per_digit=args.samples_per_digit,
        seed=args.seed,
        pictures=not args.no_pictures,
        binarized_k=args.binarized_k or 0,
        binarized_examples=args.binarized_examples,
    )
    # Read leniently: the training curves are a nicety, and older exports predate the contract.
    history = json.loads((version_dir / METADATA_FILE).read_text()).get("history", {})
    figures = evaluate(
        signatures, to_float(mnist.x_test), mnist.y_test, config, args.output, history
    )
    print(format_figures(figures), flush=True)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        path = args.output / "evaluation.json"
        path.write_text(json.dumps({"version": version, **figures}, indent=2) + "\n")
        print(f"Wrote {path}" + ("" if args.no_pictures else f" and {args.output / 'report'}/"))
    return 0


def binarized(args: argparse.Namespace, version: int, signatures, x_test) -> int:
    """``--protocol binarized``: the literature's test NLL alone, printed (and written to
    ``--output``/evaluation-binarized.json)."""
    from training import protocol
    from vae_contract import Signature

    k = args.binarized_k or protocol.K
    print(
        f"Test NLL on binarized MNIST (test set binarized with seed {protocol.TEST_SEED}), "
        f"IWAE with k={k} on {min(args.binarized_examples, len(x_test))} digits",
        flush=True,
    )
    result = protocol.binarized_nll(
        signatures[Signature.LOG_WEIGHTS], x_test, k, args.binarized_examples, args.seed
    )
    print(result.describe(), flush=True)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        path = args.output / "evaluation-binarized.json"
        path.write_text(json.dumps({"version": version, **result.to_dict()}, indent=2) + "\n")
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
