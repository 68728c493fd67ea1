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
from vae_contract import ANY_DIGIT, IMAGE_SHAPE, MODEL_NAME, WARMUP_FILE, Signature

log = logging.getLogger(__name__)


def warmup_requests(
    latent_dim: int, supports_digit: bool
) -> dict[Signature, dict[str, np.ndarray]]:
    """Two rows (or one image, for log_weights) per signature, with the dtypes it declares."""
    images = np.zeros((2, *IMAGE_SHAPE), np.float32)
    scalars: dict[str, np.ndarray] = {
        "count": np.array(2, np.int32),
        "seed": np.array(0, np.int64),
        "temperature": np.array(1.0, np.float32),
    }
    requests: dict[Signature, dict[str, np.ndarray]] = {
        Signature.DECODE: {"z": np.zeros((2, latent_dim), np.float32)},
        Signature.ENCODE: {"images": images},
        Signature.SAMPLE: scalars,
        Signature.SAMPLE_BATCH: {
            "seeds": np.zeros(2, np.int64),
            "indices": np.arange(2, dtype=np.int64),
            "temperatures": np.ones(2, np.float32),
            "digits": np.full(2, ANY_DIGIT, np.int32),
        },
        # As the service scores an image: the score reference's samples and seed.
        Signature.LOG_WEIGHTS: {
            "images": images[:1],
            "samples": np.array(SCORE_SAMPLES, np.int32),
            "seed": np.array(SCORE_SEED, np.int64),
        },
    }
    if supports_digit:
        requests[Signature.SAMPLE_DIGIT] = {**scalars, "digit": np.array(0, np.int32)}
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
