"""``vae-eval``: evaluate an exported model again (figures, pictures, metadata)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.data import DEFAULT_DATA_DIR


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vae-eval``."""
    parser = argparse.ArgumentParser(prog="vae-eval", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("model"),
                        help="base folder holding vae/<version>/")
    parser.add_argument("--version", type=int, help="version to evaluate (default: newest)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--iwae-k", type=int, default=1000, help="importance samples")
    parser.add_argument("--iwae-examples", type=int, default=1000,
                        help="test digits for the IWAE bound (10000: all)")
    parser.add_argument("--samples", type=int, default=10000,
                        help="random samples judged by the classifier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pictures", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from training.evaluate import EvalConfig, evaluate_export
    from training.export import MODEL_NAME, existing_versions

    versions = existing_versions(args.model_dir / MODEL_NAME)
    version = args.version or (versions[-1] if versions else None)
    if version not in versions:
        print(f"vae-eval: no model version {version} in {args.model_dir / MODEL_NAME}",
              file=sys.stderr)
        return 1
    config = EvalConfig(iwae_k=args.iwae_k, iwae_examples=args.iwae_examples,
                        samples=args.samples, seed=args.seed, pictures=not args.no_pictures)
    evaluate_export(args.model_dir / MODEL_NAME / str(version), args.data_dir, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
