"""Every image mode Pillow can open, in every format that can hold it, is encoded correctly or
refused with 415/422; never a 500 (the issue: LA and CIELAB TIFFs, both byte orders, were).

The matrix (``tests/support/imagegen.py``): the same digit in modes 1, L, LA, La, P, P with a
transparent colour, PA, RGB, RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV, I, I;16 (and B, L, N),
F, saved as PNG, TIFF, BMP, GIF, WebP and JPEG where Pillow can write the mode; a TIFF for
each of the 124 layouts Pillow's TIFF reader knows (byte order × photometric × sample format
× fill order × bits × extra samples), written field by field; compressed TIFFs; animations and
multi-page files. Checked here in-process (the answer is the digit); every file through a real
server in ``tests/reliability/test_image_modes.py``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from app.media import preprocess
from tests.support import imagegen

MATRIX = list(imagegen.mode_matrix())
# Modes that no Pillow writer saves in some format, and a TIFF layout cannot say: the pipeline
# is checked on them in memory.
IN_MEMORY = ("La", "RGBa", "HSV", "I;16N", "I;16L", "LAB", "P+transparency")
REFERENCE = preprocess.load_upload(imagegen.save(imagegen.digit(), "PNG"), 10**8)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def keeps_the_digit(sample: imagegen.Sample) -> bool:
    """Whether the file holds the digit as drawn: Pillow's GIF and BMP writers drop alpha,
    and layouts of fewer than 8 bits or with palettes hold it only approximately."""
    name = sample.name
    dropped_alpha = any(
        name.startswith(m) for m in ("LA.", "RGBA.", "La.", "RGBa.", "PA.")
    ) and name.endswith((".gif", ".bmp"))
    return sample.faithful and not dropped_alpha


def test_the_matrix_covers_every_mode_and_tiff_layout():
    from PIL import TiffImagePlugin

    names = [s.name for s in MATRIX]
    for mode in imagegen.MODES:
        in_a_file = any(n.startswith(f"{mode}.") or n.endswith(f"-{mode}") for n in names)
        assert in_a_file or mode in IN_MEMORY, mode
    assert sum(n.startswith("tiff-") for n in names) == len(TiffImagePlugin.OPEN_INFO)
    for layout in (
        "MM-photometric1-format(1,)-fill1-bits8x8-extra(2,)-LA",
        "II-photometric1-format(1,)-fill1-bits8x8-extra(2,)-LA",
        "MM-photometric8",
        "II-photometric8",
    ):
        assert any(layout in n for n in names), layout  # the four TIFFs that gave 500
    assert len(MATRIX) >= 200


@pytest.mark.parametrize("mode", IN_MEMORY)
def test_modes_no_file_format_writes_are_handled_in_memory(mode):
    """Modes Pillow can hold but not save everywhere: the pipeline itself handles them."""
    result = preprocess.mnist_like(imagegen.in_mode(mode))
    assert similarity(result, REFERENCE) > 0.98


def test_each_file_of_the_matrix_is_the_digit_or_a_clear_4xx():
    outcomes: Counter[str] = Counter()
    for sample in MATRIX:
        try:
            result = preprocess.load_upload(sample.data, 16_000_000, sample.name)
        except preprocess.ImageError as error:
            assert error.status_code in (415, 422), (sample.name, error.message)
            assert sample.name in error.message
            outcomes[str(error.status_code)] += 1
            continue
        assert result.shape == (28, 28) and np.isfinite(result).all(), sample.name
        assert 0 <= result.min() and result.max() <= 1, sample.name
        if keeps_the_digit(sample):
            bits = sample.name.split("-bits")[-1].split("-")[0] if "-bits" in sample.name else ""
            lossy = sample.lossy or bits in ("1", "2", "4")
            assert similarity(result, REFERENCE) > (0.9 if lossy else 0.98), sample.name
            outcomes["the digit"] += 1
        else:
            outcomes["decoded"] += 1
    print(f"\n{len(MATRIX)} files: {dict(outcomes)}")
    # Only the TIFF layouts Pillow lists but cannot decode (fill order 2 of some raw modes).
    assert outcomes["415"] + outcomes["422"] <= 8, outcomes
    assert outcomes["the digit"] >= 195, outcomes
