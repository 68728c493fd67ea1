"""Device selection: GPU when TensorFlow sees one (memory growth on), else CPU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import tensorflow as tf

from app.serving.device import configure_tensorflow, select_device

GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


@pytest.mark.parametrize(
    "preference, gpus, expected",
    [
        ("auto", [], "/CPU:0"),
        ("auto", GPUS, "/GPU:0"),
        ("gpu", GPUS, "/GPU:0"),
        ("cpu", GPUS, "/CPU:0"),
        ("cpu", [], "/CPU:0"),
    ],
)
def test_select_device(preference, gpus, expected):
    assert select_device(preference, gpus) == expected


def test_gpu_required_but_missing_is_a_clear_error():
    with pytest.raises(RuntimeError, match="sees no GPU"):
        select_device("gpu", [])


def test_gpus_get_memory_growth_and_the_first_gpu_is_used(monkeypatch):
    """The GPU path on a machine without one: TensorFlow's device list is faked, the calls
    the service makes on it are recorded."""
    fake = [SimpleNamespace(name=name, device_type="GPU") for name in GPUS]
    grown = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake)
    monkeypatch.setattr(
        tf.config.experimental,
        "set_memory_growth",
        lambda device, on: grown.append((device.name, on)),
    )
    assert configure_tensorflow("auto", 0, 0) == "/GPU:0"
    assert grown == [(GPUS[0], True), (GPUS[1], True)]


def test_cpu_machine_uses_the_cpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert configure_tensorflow("auto", 0, 0) == "/CPU:0"
