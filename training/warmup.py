"""TensorFlow Serving's warm-up requests, ``<version>/assets.extra/tf_serving_warmup_requests``:
a TFRecord file of ``PredictionLog`` protos, one small request per signature, that TensorFlow
Serving replays when it loads the version, so the first real request does not pay for the
graph's set-up. The protos come from ``tensorflow-serving-api``; without it, no file is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.references import SCORE_SAMPLES, SCORE_SEED
from vae_contract import MODEL_NAME, SIGNATURES, WARMUP_FILE, Signature

log = logging.getLogger(__name__)


def warmup_requests(
    latent_dim: int, supports_digit: bool
) -> dict[Signature, dict[str, np.ndarray]]:
    """The contract's example inputs for each signature (two rows), log_weights as the
    service scores an image: one image, the score reference's samples and seed."""
    requests: dict[Signature, dict[str, np.ndarray]] = {
        Signature(name): contract.example_inputs(latent_dim)
        for name, contract in SIGNATURES.items()
        if name not in (Signature.SAMPLE_DIGIT, Signature.LOG_WEIGHTS)
    }
    requests[Signature.LOG_WEIGHTS] = SIGNATURES[Signature.LOG_WEIGHTS].example_inputs(
        latent_dim, rows=1, samples=SCORE_SAMPLES, seed=SCORE_SEED
    )
    if supports_digit:
        requests[Signature.SAMPLE_DIGIT] = SIGNATURES[Signature.SAMPLE_DIGIT].example_inputs(
            latent_dim
        )
    return requests


def write_warmup_file(folder: Path, latent_dim: int, supports_digit: bool) -> Path | None:
    """Write ``folder/assets.extra/tf_serving_warmup_requests``; returns its path, or None
    when ``tensorflow-serving-api`` is not installed."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        log.info("no TensorFlow Serving warm-up file: tensorflow-serving-api is not installed")
        return None
    path = Path(folder) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in warmup_requests(latent_dim, supports_digit).items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=signature)
            )
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            entry = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(entry.SerializeToString())
    return path
