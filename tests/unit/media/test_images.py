"""Uploads made MNIST-like, and PNG output."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.media.pictures import grid_png, png_base64, to_pixels, to_png
from app.media.preprocess import ImageError, load_upload

LIMIT = 10_000_000


def drawing(size=(120, 160), ink=0, paper=255, mode="L") -> Image.Image:
    """A thick '7' written in ``ink`` on ``paper``, off-centre like a real photo."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    draw.line([(20, 30), (90, 30), (50, 140)], fill=ink, width=12)
    return image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def centre_of_mass(array: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(array.shape)
    return (ys * array).sum() / array.sum(), (xs * array).sum() / array.sum()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return load_upload(encoded(drawing(), "PNG"), LIMIT)


def test_dark_on_light_becomes_mnist_like(reference):
    assert reference.shape == (28, 28) and reference.dtype == np.float32
    assert 0 <= reference.min() and reference.max() <= 1 and reference.max() > 0.9
    # White ink on black, the ink fits 20x20, centred by mass.
    assert reference[0].max() == 0 and reference[:, 0].max() == 0
    rows = np.flatnonzero(reference.max(axis=1) > 0.05)
    cols = np.flatnonzero(reference.max(axis=0) > 0.05)
    assert rows[-1] - rows[0] < 22 and cols[-1] - cols[0] < 22
    cy, cx = centre_of_mass(reference)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_white_on_black_gives_the_same_digit(reference):
    inverted = load_upload(encoded(drawing(ink=255, paper=0), "PNG"), LIMIT)
    assert np.abs(inverted - reference).max() < 0.02


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_accepted_formats(reference, fmt):
    image = drawing().convert("RGB") if fmt == "JPEG" else drawing()
    result = load_upload(encoded(image, fmt), LIMIT)
    assert np.abs(result - reference).mean() < 0.03


def test_transparent_background_is_white_paper(reference):
    rgba = Image.new("RGBA", (120, 160), (0, 0, 0, 0))  # transparent *black*
    ImageDraw.Draw(rgba).line([(20, 30), (90, 30), (50, 140)], fill=(0, 0, 0, 255), width=12)
    result = load_upload(encoded(rgba, "PNG"), LIMIT)
    assert np.abs(result - reference).max() < 0.02


def test_palette_and_one_bit_images(reference):
    for mode in ("P", "1"):
        result = load_upload(encoded(drawing().convert(mode), "PNG"), LIMIT)
        assert np.abs(result - reference).mean() < 0.03


def test_sixteen_bit_greyscale_is_scaled_not_washed_out():
    grey8 = drawing(ink=60, paper=230)
    grey16 = Image.fromarray(np.asarray(grey8, dtype=np.uint16) * 257)
    assert grey16.mode.startswith("I;16")
    eight = load_upload(encoded(grey8, "PNG"), LIMIT)
    sixteen = load_upload(encoded(grey16, "PNG"), LIMIT)
    assert sixteen.max() > 0.9
    assert np.abs(sixteen - eight).max() < 0.02


def test_exif_orientation_is_applied(reference):
    upright = drawing()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rotated = load_upload(encoded(stored.convert("RGB"), "JPEG", exif=exif), LIMIT)
    plain = load_upload(encoded(upright.convert("RGB"), "JPEG"), LIMIT)
    assert np.abs(rotated - plain).mean() < 0.03


def test_blank_image_is_all_black():
    assert not load_upload(encoded(Image.new("L", (50, 50), 255), "PNG"), LIMIT).any()


@pytest.mark.parametrize(
    "data, status",
    [
        (b"", 415),
        (b"hello, this is text", 415),
        (bytes(range(256)) * 4, 415),
        (encoded(drawing(), "PPM"), 415),  # a real image, but not an accepted format
        (encoded(drawing(), "PNG")[:80], 422),  # header fine, data cut
    ],
)
def test_unusable_uploads(data, status):
    with pytest.raises(ImageError) as error:
        load_upload(data, LIMIT, name="upload.bin")
    assert error.value.status_code == status
    assert "upload.bin" in error.value.message


def test_too_many_pixels_is_refused_before_decoding():
    huge = encoded(Image.new("1", (4000, 3000)), "PNG")  # 12 MP in a few kB
    with pytest.raises(ImageError) as error:
        load_upload(huge, max_pixels=1_000_000, name="bomb.png")
    assert error.value.status_code == 413 and "4000×3000" in error.value.message


def test_png_round_trip_and_scale():
    image = np.random.default_rng(0).uniform(size=(28, 28)).astype(np.float32)
    decoded = np.asarray(Image.open(io.BytesIO(to_png(image))))
    np.testing.assert_array_equal(decoded, np.round(image * 255).astype(np.uint8))
    assert Image.open(io.BytesIO(to_png(image, scale=3))).size == (84, 84)
    encoded = png_base64(np.stack([image, 1 - image]))
    assert len(encoded) == 2
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded[0])))), decoded
    )


def test_pixels_round_to_the_nearest_grey_and_what_is_not_a_number_is_black():
    values = np.array([np.nan, np.inf, -np.inf, -0.0, -0.3, 1.7, 0.5 / 255, 1.5 / 255, 1.0])
    assert to_pixels(values).tolist() == [0, 255, 0, 0, 0, 255, 0, 2, 255]  # halves to even
    rng = np.random.default_rng(1)
    images = rng.normal(0.5, 0.6, (16, 28, 28)).astype(np.float32)
    images.flat[::37] = np.nan
    expected = np.round(np.clip(np.nan_to_num(images), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(to_pixels(images), expected)


def test_grid_layout():
    images = np.ones((10, 28, 28), np.float32)
    grid = Image.open(io.BytesIO(grid_png(images, nrow=5)))
    assert grid.size == (5 * 28 + 6 * 2, 2 * 28 + 3 * 2)
    square = Image.open(io.BytesIO(grid_png(images)))  # default: ceil(sqrt(10)) = 4 per row
    assert square.size == (4 * 30 + 2, 3 * 30 + 2)
    assert Image.open(io.BytesIO(grid_png(images[:1]))).size == (28, 28)
