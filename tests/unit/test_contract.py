"""The contract's table of signatures (``vae_contract.SIGNATURES``): what it resolves to, the
inputs it builds, the differences it finds, and the stand-in model that derives from it. The
export is checked against the same table in ``tests/model/test_contract.py``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.serving.errors import LoadError
from app.serving.model import check_contract
from tests.support.fakes import D, FakeModel
from vae_contract import (
    ANY_DIGIT,
    REQUIRED_SIGNATURES,
    SIGNATURES,
    Signature,
    TensorSpec,
)


def test_every_signature_is_described_once():
    assert set(SIGNATURES) == set(Signature)
    assert set(REQUIRED_SIGNATURES) == {
        Signature.DECODE,
        Signature.ENCODE,
        Signature.SAMPLE_BATCH,
        Signature.LOG_WEIGHTS,
    }


def test_symbols_resolve_to_the_models_shapes():
    decode = SIGNATURES[Signature.DECODE].spec(latent_dim=7)
    assert decode.inputs["z"] == TensorSpec("z", np.dtype(np.float32), (None, 7))
    assert decode.outputs["images"].shape == (None, 28, 28)
    weights = SIGNATURES[Signature.LOG_WEIGHTS].spec(latent_dim=7)
    assert weights.outputs["log_weights"].shape == (None, None)
    assert not weights.batched  # scalar samples and seed: such a call is never merged
    assert SIGNATURES[Signature.SAMPLE_BATCH].spec(7).batched


@pytest.mark.parametrize("name", list(Signature))
def test_example_inputs_have_the_declared_dtypes_and_shapes(name):
    contract = SIGNATURES[name]
    spec = contract.spec(D)
    inputs = contract.example_inputs(D, rows=3)
    assert list(inputs) == list(spec.inputs)
    for key, value in inputs.items():
        wanted = spec.inputs[key]
        assert value.dtype == wanted.dtype
        assert len(value.shape) == len(wanted.shape)
        assert all(w is None or g == w for g, w in zip(value.shape, wanted.shape, strict=True))


def test_example_values_can_be_replaced_by_name():
    inputs = SIGNATURES[Signature.LOG_WEIGHTS].example_inputs(D, rows=1, samples=100, seed=3)
    assert (int(inputs["samples"]), int(inputs["seed"])) == (100, 3)
    assert inputs["images"].shape == (1, 28, 28)
    assert set(SIGNATURES[Signature.SAMPLE_BATCH].example_inputs(D)["digits"]) == {ANY_DIGIT}


def test_arrays_takes_exactly_the_inputs_and_casts_them():
    contract = SIGNATURES[Signature.SAMPLE_BATCH]
    arrays = contract.arrays(seeds=[1, 2], indices=[0, 1], temperatures=[1.0, 0.5], digits=[-1, 3])
    assert {k: v.dtype for k, v in arrays.items()} == {
        "seeds": np.int64,
        "indices": np.int64,
        "temperatures": np.float32,
        "digits": np.int32,
    }
    with pytest.raises(TypeError, match="seeds, indices, temperatures, digits"):
        contract.arrays(seeds=[1], indices=[0], temperatures=[1.0])


def test_a_signature_that_breaks_the_contract_is_told_apart():
    contract = SIGNATURES[Signature.DECODE]
    spec = contract.spec(D)
    assert contract.mismatches(spec, D) == []
    assert contract.mismatches(spec, D + 1) == [
        f"input z is float32[None, {D}], the contract says float32[None, {D + 1}]"
    ]
    widened = dataclasses.replace(
        spec, outputs={"images": TensorSpec("images", np.dtype(np.float64), (None, 28, 28))}
    )
    assert "output images is float64" in contract.mismatches(widened, D)[0]
    renamed = dataclasses.replace(spec, inputs={"code": spec.inputs["z"]})
    assert contract.mismatches(renamed, D) == ["inputs ['code'], the contract says ['z']"]


@pytest.mark.parametrize("name", list(Signature))
def test_the_stand_in_model_keeps_the_contract(name):
    contract = SIGNATURES[name]
    outputs = FakeModel().call(name, contract.example_inputs(D, rows=2))
    wanted = contract.spec(D).outputs
    assert set(outputs) == set(wanted)
    for key, value in outputs.items():
        assert value.dtype == wanted[key].dtype, key
        assert len(value.shape) == len(wanted[key].shape), key


def test_a_version_whose_signature_breaks_the_contract_is_refused():
    signatures = dict(FakeModel().signatures)
    check_contract(signatures, D)  # the stand-in keeps it
    decode = signatures["decode"]
    signatures["serving_default"] = dataclasses.replace(
        decode, inputs={"z": TensorSpec("z", np.dtype(np.float64), (None, D))}
    )
    with pytest.raises(LoadError) as refused:
        check_contract(signatures, D)
    assert refused.value.code == "FAILED_PRECONDITION"
    assert "serving_default signature breaks the contract: input z is float64" in str(refused.value)
