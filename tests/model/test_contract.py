"""A fresh export (the session's trained model) against ``vae_contract``: every signature keeps
the table's inputs and outputs (``vae_contract.SIGNATURES``), the metadata validates, the
explorer's references are what the service will compute."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from training import references
from training.data import to_float
from vae_contract import (
    ANY_DIGIT,
    IMAGE_SHAPE,
    METADATA_FILE,
    REQUIRED_SIGNATURES,
    SERVING_DEFAULT,
    SIGNATURES,
    WARMUP_FILE,
    ModelMetadata,
    ScoreReference,
    Signature,
    SignatureSpec,
    TensorSpec,
    iwae_estimate,
    list_versions,
    model_base,
)

D = 20  # the tiny preset's latent size


@pytest.fixture(scope="module")
def signatures(version_dir):
    return tf.saved_model.load(str(version_dir)).signatures


def loaded_spec(name: str, function) -> SignatureSpec:
    """A concrete function's inputs and outputs, as the service reads them."""

    def spec(key: str, tensor) -> TensorSpec:
        dtype = np.dtype(tensor.dtype.as_numpy_dtype)
        return TensorSpec(key, dtype, tuple(tensor.shape.as_list()))

    return SignatureSpec(
        name,
        {k: spec(k, v) for k, v in function.structured_input_signature[1].items()},
        {k: spec(k, v) for k, v in function.structured_outputs.items()},
    )


@pytest.mark.parametrize("name", list(Signature))
def test_each_signature_has_the_contracts_inputs_and_outputs(signatures, name):
    assert SIGNATURES[name].mismatches(loaded_spec(name, signatures[name]), D) == []


def test_required_signatures_and_serving_default_is_decode(signatures):
    assert set(REQUIRED_SIGNATURES) <= set(signatures)
    assert set(signatures) == {*Signature, SERVING_DEFAULT}
    default = loaded_spec(SERVING_DEFAULT, signatures[SERVING_DEFAULT])
    assert SIGNATURES[Signature.DECODE].mismatches(default, D) == []
    z = tf.constant(np.random.default_rng(0).normal(size=(3, D)), tf.float32)
    np.testing.assert_array_equal(
        signatures[SERVING_DEFAULT](z=z)["images"], signatures[Signature.DECODE](z=z)["images"]
    )


def test_any_digit_rows_come_from_the_sampling_prior(signatures):
    rows = {
        "seeds": tf.constant([5, 5], tf.int64),
        "indices": tf.constant([0, 1], tf.int64),
        "temperatures": tf.constant([1.0, 1.0]),
    }
    batch = signatures[Signature.SAMPLE_BATCH](digits=tf.constant([ANY_DIGIT] * 2), **rows)
    alone = signatures[Signature.SAMPLE](
        count=tf.constant(2), seed=tf.constant(5, tf.int64), temperature=tf.constant(1.0)
    )
    np.testing.assert_allclose(batch["latents"], alone["latents"], rtol=1e-6)


def test_the_metadata_validates_and_matches_the_signatures(version_dir, signatures):
    raw = json.loads((version_dir / METADATA_FILE).read_text())
    assert "version" not in raw  # the folder's name is the version
    metadata = ModelMetadata.read(version_dir)
    assert metadata.latent_dim == D and metadata.image_shape == IMAGE_SHAPE
    assert metadata.supports_digit == (Signature.SAMPLE_DIGIT in signatures)
    assert metadata.hyperparameters["latent_dim"] == D
    assert metadata.metrics["test_neg_elbo"] == pytest.approx(
        metadata.history["val_loss"][-1], abs=1e-3
    )
    assert metadata.evaluation["iwae_k"] >= 1 and "test_nll_iwae" in metadata.evaluation
    for picture in metadata.evaluation["pictures"]:
        assert (version_dir / picture).is_file()


def test_a_version_is_listed_by_its_folder_name(model_dir, version_dir):
    assert list_versions(model_base(model_dir)) == [int(version_dir.name)] == [1]


def test_the_model_without_digit_prior_says_so(model_dir_without_digits):
    version_dir = model_base(model_dir_without_digits) / "1"
    signatures = tf.saved_model.load(str(version_dir)).signatures
    metadata = ModelMetadata.read(version_dir)
    assert Signature.SAMPLE_DIGIT not in signatures and not metadata.supports_digit
    assert metadata.prior.kind == "standard" and metadata.prior.components == 1
    assert set(REQUIRED_SIGNATURES) <= set(signatures)


def test_latent_axes_are_orthonormal_principal_axes_of_the_training_codes(
    version_dir, mnist, signatures
):
    axes = ModelMetadata.read(version_dir).latent_axes
    assert axes is not None
    directions = np.array(axes.axes)
    np.testing.assert_allclose(directions @ directions.T, np.eye(D), atol=1e-6)
    assert np.all(np.diff(axes.stddev) <= 0) and len(axes.mean) == D
    # The spread of the training codes along each axis is the recorded one.
    codes = signatures[Signature.ENCODE](images=tf.constant(to_float(mnist.x_train[:20000])))
    centred = codes["mu"].numpy() - np.array(axes.mean)
    np.testing.assert_allclose((centred @ directions.T).std(axis=0, ddof=1), axes.stddev, rtol=1e-3)


def test_the_score_reference_is_what_the_service_will_compute(version_dir, mnist, signatures):
    """Scoring the test digits again through log_weights with the recorded k and seed, then
    vae_contract.iwae_estimate, gives the recorded percentiles."""
    reference = ModelMetadata.read(version_dir).score_reference
    assert reference is not None
    assert (reference.samples, reference.seed, reference.examples) == (
        references.SCORE_SAMPLES,
        references.SCORE_SEED,
        references.SCORE_EXAMPLES,
    )
    assert np.all(np.diff(reference.percentiles) >= 0)
    images = to_float(mnist.x_test[: reference.examples])
    estimates = []
    for start in range(0, len(images), 250):
        out = signatures[Signature.LOG_WEIGHTS](
            images=tf.constant(images[start : start + 250]),
            samples=tf.constant(reference.samples),
            seed=tf.constant(reference.seed, tf.int64),
        )["log_weights"].numpy()
        estimates += [iwae_estimate(row.tolist()) for row in out]
    np.testing.assert_allclose(
        np.percentile(estimates, np.arange(101)), reference.percentiles, rtol=1e-4
    )
    # A test digit falls among them; noise does not.
    assert 0 < reference.percentile_of(float(np.median(estimates))) < 100
    noise = np.random.default_rng(0).uniform(size=(1, 28, 28)).astype(np.float32)
    out = signatures[Signature.LOG_WEIGHTS](
        images=tf.constant(noise),
        samples=tf.constant(reference.samples),
        seed=tf.constant(reference.seed, tf.int64),
    )
    assert reference.percentile_of(iwae_estimate(out["log_weights"].numpy()[0].tolist())) == 0


def test_iwae_estimate_is_a_stable_log_mean_exp():
    weights = [-1000.0, -1001.0, -1002.5]
    expected = -1000.0 + math.log((1 + math.exp(-1) + math.exp(-2.5)) / 3)
    assert iwae_estimate(weights) == pytest.approx(expected, rel=1e-12)
    assert iwae_estimate([-5.0]) == -5.0
    assert iwae_estimate([-math.inf, -math.inf]) == -math.inf
    with pytest.raises(ValueError):
        iwae_estimate([])


def test_percentile_of_interpolates_between_the_stored_percentiles():
    reference = ScoreReference(
        samples=10, seed=0, examples=101, percentiles=[float(2 * p) for p in range(101)]
    )
    assert reference.percentile_of(-1.0) == 0.0
    assert reference.percentile_of(0.0) == 0.0
    assert reference.percentile_of(3.0) == pytest.approx(1.5)
    assert reference.percentile_of(100.0) == pytest.approx(50.0)
    assert reference.percentile_of(200.0) == 100.0 and reference.percentile_of(1e9) == 100.0
    with pytest.raises(ValueError):
        reference.percentile_of(math.nan)


def test_the_warm_up_file_holds_one_valid_request_per_signature(version_dir, signatures):
    """TensorFlow Serving replays assets.extra/tf_serving_warmup_requests at load; each record
    must be a PredictionLog whose request the signature accepts."""
    prediction_log_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.prediction_log_pb2",
        reason="no warm-up file: tensorflow-serving-api is not installed (it pins its own "
        "TensorFlow, so no extra of the project brings it; pip install it to run this test)",
    )
    records = tf.data.TFRecordDataset(str(version_dir / WARMUP_FILE))
    called = []
    for record in records:
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = entry.predict_log.request
        assert request.model_spec.name == "vae"
        inputs = {
            name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()
        }
        outputs = signatures[request.model_spec.signature_name](**inputs)
        assert all(np.all(np.isfinite(value)) for value in outputs.values())
        called.append(request.model_spec.signature_name)
    assert sorted(called) == sorted(Signature)


def test_metadata_of_older_and_newer_exports_still_reads(version_dir, tmp_path):
    """An export made before this contract (with a ``version`` field) or by a newer trainer
    (an unknown field) is served, not refused: a user's trained versions stay usable."""
    fields = json.loads((version_dir / METADATA_FILE).read_text())
    (tmp_path / METADATA_FILE).write_text(
        json.dumps({**fields, "version": 1, "name": "vae", "from_the_future": True})
    )
    assert ModelMetadata.read(tmp_path) == ModelMetadata.read(version_dir)
