"""Images for the reliability suite: one digit in every mode and format Pillow reads, TIFFs
written field by field (every layout Pillow's TIFF reader knows, in both byte orders),
decompression bombs, and a deterministic corpus of mutated files.

Everything is generated from a seed, so a failure names an image that can be made again.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, TiffImagePlugin

SIZE = (96, 80)  # width, height


def digit() -> Image.Image:
    """A white "7" with a bar on black, in mode L: the reference every variant is compared to."""
    image = Image.new("L", SIZE, 0)
    draw = ImageDraw.Draw(image)
    draw.line([(22, 14), (72, 14), (40, 70)], fill=255, width=9, joint="curve")
    draw.line([(36, 42), (62, 42)], fill=200, width=6)
    return image


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# --- the digit in every mode ------------------------------------------------------------------
def _ink_on_transparent(mode: str) -> Image.Image:
    """Black ink where the digit is, transparent elsewhere: how drawings with alpha look.
    Composited onto white paper and inverted, it is the reference digit again."""
    ink = digit()
    black = Image.new("L", SIZE, 0)
    if mode == "LA":
        return Image.merge("LA", [black, ink])
    if mode == "La":
        return Image.merge("LA", [black, ink]).convert("La")
    if mode == "PA":
        palette = Image.new("P", SIZE, 0)
        palette.putpalette([0, 0, 0] * 256)
        return Image.merge("PA", [palette, ink])
    rgba = Image.merge("RGBA", [black, black, black, ink])
    return rgba.convert("RGBa") if mode == "RGBa" else rgba


def in_mode(mode: str) -> Image.Image:
    """The reference digit in ``mode`` (transparent modes: black ink on transparency)."""
    reference = digit()
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        return _ink_on_transparent(mode)
    if mode == "P+transparency":
        return _ink_palette_with_transparent_paper()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.asarray(reference, np.uint16) * 257
        dtype = {"I;16B": ">u2", "I;16N": "=u2"}.get(mode, "<u2")
        return Image.frombytes(mode, SIZE, pixels.astype(dtype).tobytes())
    if mode == "LAB":
        neutral = Image.new("L", SIZE, 128)
        return Image.merge("LAB", [reference, neutral, neutral])
    if mode in ("HSV", "YCbCr"):
        return reference.convert("RGB").convert(mode)
    return reference.convert(mode)


def _ink_palette_with_transparent_paper() -> Image.Image:
    """Index 1 (black ink) where the digit is, index 0 (transparent paper) elsewhere."""
    pixels = (np.asarray(digit()) >= 128).astype(np.uint8)
    result = Image.fromarray(pixels, "L").convert("P")
    result.putpalette([255, 255, 255, 0, 0, 0])
    result.info["transparency"] = 0
    return result


MODES = (
    "1",
    "L",
    "LA",
    "La",
    "P",
    "P+transparency",
    "PA",
    "RGB",
    "RGBA",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "I;16B",
    "I;16L",
    "I;16N",
    "F",
)
LOSSY = ("JPEG", "WEBP")


@dataclass(frozen=True)
class Sample:
    """One generated file, and whether its pixels are the reference digit (so that the
    encoded answer can be checked, not just its status)."""

    name: str
    data: bytes
    faithful: bool = True
    lossy: bool = False


def encodings(image: Image.Image, mode: str) -> Iterator[Sample]:
    """``image`` in each format that can hold its mode (Pillow's own writers)."""
    options: dict[str, dict[str, object]] = {
        "PNG": {},
        "TIFF": {},
        "BMP": {},
        "GIF": {},
        "WEBP": {"lossless": True},
        "JPEG": {"quality": 95},
    }
    for fmt, kwargs in options.items():
        try:
            data = save(image, fmt, **kwargs)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # this format cannot hold this mode
        yield Sample(f"{mode}.{fmt.lower()}", data, lossy=fmt == "JPEG")
    if mode in ("RGB", "L"):
        yield Sample(f"{mode}.lossy.webp", save(image, "WEBP", quality=90), lossy=True)
        yield Sample(
            f"{mode}.progressive.jpeg",
            save(image, "JPEG", progressive=True, quality=95),
            lossy=True,
        )
    if mode in ("L", "RGB", "RGBA", "P"):
        yield Sample(f"{mode}.split-idat.png", _split_idat_png(image))


def _split_idat_png(image: Image.Image) -> bytes:
    """The same PNG with its image data split into many small IDAT chunks (decoders must
    join them)."""
    data = save(image, "PNG")
    chunks = list(png_chunks(data))
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    out = [PNG_MAGIC]
    for kind, body in chunks:
        if kind == b"IDAT":
            if idat:
                out += [png_chunk(b"IDAT", idat[i : i + 97]) for i in range(0, len(idat), 97)]
                idat = b""
        else:
            out.append(png_chunk(kind, body))
    return b"".join(out)


def multi_frame() -> Iterator[Sample]:
    """Animations and multi-page files whose first frame is the digit."""
    first = digit()
    other = Image.new("L", SIZE, 255)
    frames = [other, other.rotate(45)]
    yield Sample(
        "animated.gif",
        save(first, "GIF", save_all=True, append_images=frames, duration=100, loop=0),
    )
    yield Sample("animated.png", save(first, "PNG", save_all=True, append_images=frames))
    yield Sample("multipage.tiff", save(first, "TIFF", save_all=True, append_images=frames))
    yield Sample(
        "animated.webp",
        save(
            first.convert("RGB"),
            "WEBP",
            save_all=True,
            append_images=[f.convert("RGB") for f in frames],
            lossless=True,
        ),
    )


def compressed_tiffs() -> Iterator[Sample]:
    image = digit()
    for compression in ("tiff_lzw", "tiff_adobe_deflate", "packbits", "tiff_jpeg", "group4"):
        source = image.convert("1") if compression == "group4" else image
        try:
            data = save(source, "TIFF", compression=compression)
        except (OSError, ValueError):
            continue
        yield Sample(f"L.{compression}.tiff", data, lossy=compression == "tiff_jpeg")


# --- TIFFs written field by field -------------------------------------------------------------
SHORT, LONG = 3, 4


def tiff(
    width: int,
    height: int,
    strip: bytes,
    *,
    byteorder: bytes,
    photometric: int,
    sample_format: tuple[int, ...],
    fill_order: int,
    bits: tuple[int, ...],
    extra: tuple[int, ...],
    colormap: list[int] | None = None,
    lies: dict[int, list[int]] | None = None,
) -> bytes:
    """A one-strip uncompressed baseline TIFF with exactly these fields; ``lies`` overrides
    any tag's values (to make files that claim what they do not hold)."""
    e = "<" if byteorder == b"II" else ">"
    tags: dict[int, tuple[int, list[int]]] = {
        256: (LONG, [width]),
        257: (LONG, [height]),
        258: (SHORT, list(bits)),
        259: (SHORT, [1]),
        262: (SHORT, [photometric]),
        266: (SHORT, [fill_order]),
        273: (LONG, [0]),
        277: (SHORT, [len(bits)]),
        278: (LONG, [height]),
        279: (LONG, [len(strip)]),
        284: (SHORT, [1]),
        339: (SHORT, list(sample_format) * (len(bits) if len(sample_format) == 1 else 1)),
    }
    if colormap is not None:
        tags[320] = (SHORT, colormap)
    if extra:
        tags[338] = (SHORT, list(extra))
    for tag, values in (lies or {}).items():
        tags[tag] = (tags.get(tag, (LONG, []))[0], values)
    entries = sorted(tags.items())
    blobs = b""
    blob_start = 8 + 2 + 12 * len(entries) + 4
    packed = []
    for tag, (kind, values) in entries:
        raw = struct.pack(e + ("H" if kind == SHORT else "I") * len(values), *values)
        if len(raw) <= 4:
            packed.append((tag, kind, len(values), raw.ljust(4, b"\0")))
        else:
            packed.append((tag, kind, len(values), struct.pack(e + "I", blob_start + len(blobs))))
            blobs += raw + b"\0" * (len(raw) % 2)
    strip_offset = blob_start + len(blobs)
    head = (b"II*\0" if e == "<" else b"MM\0*") + struct.pack(e + "I", 8)
    ifd = struct.pack(e + "H", len(packed))
    for tag, kind, count, value in packed:
        if tag == 273 and not (lies and 273 in lies):
            value = struct.pack(e + "I", strip_offset)
        ifd += struct.pack(e + "HHI", tag, kind, count) + value
    return head + ifd + struct.pack(e + "I", 0) + blobs + strip


COLOUR_SAMPLES = {0: 1, 1: 1, 2: 3, 3: 1, 5: 4, 6: 3, 8: 3}


def _layout_strip(
    byteorder: bytes,
    photometric: int,
    sample_format: tuple[int, ...],
    fill_order: int,
    bits: tuple[int, ...],
    extra: tuple[int, ...],
    mode: str,
) -> bytes | None:
    """The digit's pixels in a TIFF layout, packed with NumPy: each colour sample says the
    digit in that photometric interpretation (white-is-zero inverted, CMYK's K inverted,
    YCbCr's and CIELAB's lightness); the other samples are opaque alpha if Pillow reads one
    (``mode``), else zero. None for 12-bit samples, which are not written here."""
    value = np.asarray(digit(), np.float64) / 255.0
    colours = min(COLOUR_SAMPLES[photometric], len(bits))
    planes = []
    for index in range(colours):
        if photometric == 0:
            plane = 1.0 - value
        elif photometric == 5:  # CMYK: the ink is K
            plane = 1.0 - value if index == 3 else np.zeros_like(value)
        elif photometric in (6, 8) and index > 0:  # chroma: none
            plane = np.full_like(value, 0.5 if photometric == 6 else 0.0)
        else:
            plane = value
        planes.append(plane)
    has_alpha = mode[-1] in "Aa"
    planes += [
        np.ones_like(value) if has_alpha and index == 0 else np.zeros_like(value)
        for index in range(len(bits) - colours)
    ]
    depth, kind = bits[0], sample_format[0]
    if depth == 12:
        return None
    if depth < 8:  # one sample a pixel, packed most significant bits first, rows to a byte
        levels = np.round(planes[0] * ((1 << depth) - 1)).astype(np.uint8)
        per_byte = 8 // depth
        width = levels.shape[1]
        padded = np.zeros((levels.shape[0], -(-width // per_byte) * per_byte), np.uint8)
        padded[:, :width] = levels
        groups = padded.reshape(padded.shape[0], -1, per_byte)
        shifts = np.arange(per_byte - 1, -1, -1, dtype=np.uint8) * depth
        packed = (groups << shifts).sum(axis=2).astype(np.uint8)
        if fill_order == 2:
            packed = np.unpackbits(packed[..., None], axis=-1)[..., ::-1]
            packed = np.packbits(packed, axis=-1)[..., 0]
        return packed.tobytes()
    order = "<" if byteorder == b"II" else ">"
    stack = np.stack(planes, axis=-1)
    if kind == 3:
        samples = stack.astype(order + "f4")
    else:
        # 32-bit integers hold 16-bit data, as such files usually do (Pillow keeps 32-bit
        # images in signed 32-bit integers: a full-range value would wrap around).
        top = {8: 255, 16: 65535, 32: 65535}[depth] if kind == 1 else (1 << (depth - 1)) - 1
        dtype = f"{order}{'u' if kind == 1 else 'i'}{depth // 8}"
        samples = np.round(stack * top).astype(dtype)
    data = samples.tobytes()
    if fill_order == 2:
        data = np.packbits(
            np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, 8)[:, ::-1]
        ).tobytes()
    return data


def tiff_layouts() -> Iterator[Sample]:
    """One file per layout in Pillow's TIFF reader table (byte order, photometric
    interpretation, sample format, fill order, bits and extra samples) holding the digit."""
    width, height = SIZE
    for key, (mode, _rawmode) in TiffImagePlugin.OPEN_INFO.items():
        byteorder, photometric, sample_format, fill_order, bits, extra = key
        strip = _layout_strip(*key, mode=mode)
        faithful = strip is not None
        if strip is None:
            row = (width * sum(bits) + 7) // 8
            strip = bytes((i * 37 + i // row) & 0xFF for i in range(row * height))
        colormap = None
        if photometric == 3:
            levels = 1 << bits[0]
            ramp = [i * 65535 // (levels - 1) for i in range(levels)]
            colormap = ramp * 3
        name = (
            f"tiff-{byteorder.decode()}-photometric{photometric}-format{sample_format}-"
            f"fill{fill_order}-bits{'x'.join(map(str, bits))}-extra{extra}-{mode}"
        )
        yield Sample(
            name,
            tiff(
                width,
                height,
                strip,
                byteorder=byteorder,
                photometric=photometric,
                sample_format=sample_format,
                fill_order=fill_order,
                bits=bits,
                extra=extra,
                colormap=colormap,
            ),
            faithful=faithful,
            lossy=bits[0] < 8 or photometric == 3,
        )


def mode_matrix() -> Iterator[Sample]:
    """Every mode in every format that holds it, every TIFF layout, multi-frame files."""
    for mode in MODES:
        yield from encodings(in_mode(mode), mode)
    yield from tiff_layouts()
    yield from multi_frame()
    yield from compressed_tiffs()


# --- PNG by chunks ----------------------------------------------------------------------------
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    position = len(PNG_MAGIC)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        yield kind, data[position + 8 : position + 8 + length]
        position += 12 + length


def blank_png(width: int, height: int, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A valid PNG of zeros: a few kilobytes that decode to width × height pixels (a bomb)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (
        PNG_MAGIC + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")
    )


def bombs() -> Iterator[Sample]:
    """Small files that claim or decode to many pixels; the default pixel limit is 16 M."""
    yield Sample("bomb-png-4000x3999.png", blank_png(4000, 3999), faithful=False)
    yield Sample("bomb-png-rgba-2000x2000.png", blank_png(2000, 2000, 8, 6), faithful=False)
    yield Sample("bomb-png-16bit-2800x2800.png", blank_png(2800, 2800, 16, 0), faithful=False)
    yield Sample("bomb-png-5000x5000.png", blank_png(5000, 5000), faithful=False)
    header_only = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0)
    yield Sample(
        "bomb-png-header-100000x100000.png",
        PNG_MAGIC + png_chunk(b"IHDR", header_only) + png_chunk(b"IEND", b""),
        faithful=False,
    )
    yield Sample("bomb-gif-65535x65535.gif", _gif_screen(65535, 65535), faithful=False)
    yield Sample(
        "bomb-tiff-60000x60000.tiff",
        tiff(
            60000,
            60000,
            b"\0" * 64,
            byteorder=b"II",
            photometric=1,
            sample_format=(1,),
            fill_order=1,
            bits=(8,),
            extra=(),
        ),
        faithful=False,
    )
    yield Sample("bomb-jpeg-65000x65000.jpeg", _jpeg_claiming(65000, 65000), faithful=False)
    yield Sample("bomb-bmp-30000x30000.bmp", _bmp_claiming(30000, 30000), faithful=False)
    yield Sample("bomb-webp-16383x16383.webp", _webp_claiming(16383, 16383), faithful=False)
    text_bomb = zlib.compress(b"a" * 50_000_000, 9)  # zTXt: 50 MB of text in 50 kB
    small = save(digit(), "PNG")
    yield Sample(
        "bomb-ztxt.png",
        small[:33] + png_chunk(b"zTXt", b"k\0\0" + text_bomb) + small[33:],
        faithful=True,
    )
    yield Sample(
        "bomb-iccp.png",
        small[:33] + png_chunk(b"iCCP", b"p\0\0" + text_bomb) + small[33:],
        faithful=False,
    )


def _gif_screen(width: int, height: int) -> bytes:
    gif = bytearray(save(digit().convert("P"), "GIF"))
    gif[6:10] = struct.pack("<HH", width, height)
    return bytes(gif)


def _jpeg_claiming(width: int, height: int) -> bytes:
    jpeg = bytearray(save(digit(), "JPEG"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def _bmp_claiming(width: int, height: int) -> bytes:
    bmp = bytearray(save(digit(), "BMP"))
    bmp[18:26] = struct.pack("<ii", width, height)
    return bytes(bmp)


def _webp_claiming(width: int, height: int) -> bytes:
    webp = bytearray(save(digit().convert("RGB"), "WEBP", lossless=True))
    vp8l = webp.find(b"VP8L")
    bits = (width - 1) | ((height - 1) << 14)
    webp[vp8l + 9 : vp8l + 13] = struct.pack("<I", bits | (webp[vp8l + 12] & 0xF0) << 24)
    return bytes(webp)


# --- the mutated corpus -----------------------------------------------------------------------
def seeds() -> list[Sample]:
    """Valid files of each format and a few variants: what the mutations start from."""
    image = digit()
    return [
        Sample("L.png", save(image, "PNG")),
        Sample("RGBA.png", save(in_mode("RGBA"), "PNG")),
        Sample("P.png", save(image.convert("P"), "PNG")),
        Sample("I16.png", save(in_mode("I;16"), "PNG")),
        Sample("L.jpeg", save(image, "JPEG")),
        Sample("progressive.jpeg", save(image.convert("RGB"), "JPEG", progressive=True)),
        Sample("CMYK.jpeg", save(image.convert("CMYK"), "JPEG")),
        Sample("L.gif", save(image, "GIF")),
        Sample("animated.gif", next(multi_frame()).data),
        Sample("L.bmp", save(image, "BMP")),
        Sample("RGB.bmp", save(image.convert("RGB"), "BMP")),
        Sample("lossless.webp", save(image.convert("RGB"), "WEBP", lossless=True)),
        Sample("lossy.webp", save(image.convert("RGB"), "WEBP", quality=80)),
        Sample("L.tiff", save(image, "TIFF")),
        Sample("lzw.tiff", save(image, "TIFF", compression="tiff_lzw")),
        Sample(
            "MM-LA.tiff",
            tiff(
                *SIZE,
                in_mode("LA").tobytes(),
                byteorder=b"MM",
                photometric=1,
                sample_format=(1,),
                fill_order=1,
                bits=(8, 8),
                extra=(2,),
            ),
        ),
    ]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        position = rng.randrange(len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _interesting_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(out))
        out[position] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x01))
    return bytes(out)


def _splice(data: bytes, rng: random.Random) -> bytes:
    """A run of bytes repeated or removed (lengths and offsets that no longer match)."""
    start = rng.randrange(len(data))
    stop = min(len(data), start + rng.randint(1, 64))
    if rng.random() < 0.5:
        return data[:start] + data[start:stop] * rng.randint(2, 50) + data[stop:]
    return data[:start] + data[stop:]


def _header_lies(data: bytes, rng: random.Random) -> bytes:
    """Random values in the first 64 bytes, where formats keep sizes, depths and offsets."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(min(64, len(out)))
        out[position] = rng.randrange(256)
    return bytes(out)


def _png_chunk_lie(data: bytes, rng: random.Random) -> bytes:
    """One chunk's length field says something else than the chunk holds; or its body is
    changed and its CRC made right again, so the decoder gets past the checksum."""
    if not data.startswith(PNG_MAGIC):
        return _flip_bits(data, rng)
    chunks = list(png_chunks(data))
    index = rng.randrange(len(chunks))
    out = [PNG_MAGIC]
    for i, (kind, body) in enumerate(chunks):
        if i != index:
            out.append(png_chunk(kind, body))
        elif rng.random() < 0.5:
            lie = rng.choice(
                (0, 1, len(body) - 1, len(body) + 1, 2**31 - 1, 2**32 - 1, rng.randrange(2**32))
            )
            out.append(png_chunk(kind, body, length=max(0, lie)))
        else:
            mutated = _flip_bits(body, rng) if body else bytes([rng.randrange(256)])
            out.append(png_chunk(kind, mutated))
    return b"".join(out)


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": _truncate,
    "bitflip": _flip_bits,
    "bytes": _interesting_bytes,
    "splice": _splice,
    "header": _header_lies,
    "chunk-length": _png_chunk_lie,
}


def mutated_corpus(count: int, seed: int = 10) -> Iterator[Sample]:
    """``count`` mutated files, cycling through seeds and mutations (PNG seeds get chunk lies
    more often), then the bombs."""
    rng = random.Random(seed)
    sources = seeds()
    names = list(MUTATIONS)
    for index in range(count):
        source = sources[index % len(sources)]
        mutation = names[(index // len(sources)) % len(names)]
        data = MUTATIONS[mutation](source.data, rng)
        yield Sample(f"{index:05d}-{mutation}-{source.name}", data, faithful=False)
    yield from bombs()
