"""artprobe.common.images: every kind of bad or unusual image becomes RGB or a short reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from synthetic import synthetic_jpeg

from artprobe.common.images import (
    ImageDecodeError,
    decode_rgb,
    open_image,
    precrop_box,
    precrop_for_center_crop,
    to_rgb,
)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient_rgb(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = np.concatenate(
        [
            np.broadcast_to(x, (h, w, 1)),
            np.broadcast_to(y, (h, w, 1)),
            np.full((h, w, 1), 128, np.float32),
        ],
        axis=2,
    )
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"<html>not found</html>", "not an image"),
        (bytes(range(256)) * 10, "not an image"),
    ],
    ids=["empty", "html", "binary-junk"],
)
def test_non_images_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageDecodeError) as exc:
        decode_rgb(data)
    assert reason in exc.value.reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused(fmt):
    data = encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)), fmt
    )
    with pytest.raises(ImageDecodeError) as exc:
        decode_rgb(data[: len(data) // 2])
    assert exc.value.reason.startswith("truncated")


def test_corrupt_png_is_refused():
    data = bytearray(encode(gradient_rgb(), "PNG"))
    data[60:90] = b"\x00" * 30  # inside the IDAT stream: breaks its CRC / zlib stream
    with pytest.raises(ImageDecodeError):
        decode_rgb(bytes(data))


def test_decompression_bomb_is_refused_from_the_header():
    # 100,000 x 100,000 px: decoding would need 30 GB; must be refused before any allocation
    with pytest.raises(ImageDecodeError) as exc:
        decode_rgb(png_with_header_size(100_000, 100_000))
    assert "too many pixels" in exc.value.reason


def test_max_pixels_is_configurable():
    data = encode(gradient_rgb(200, 100), "PNG")
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_rgb(data, max_pixels=10_000)
    assert decode_rgb(data, max_pixels=20_000).size == (200, 100)


def test_open_image_reads_only_the_header():
    img = open_image(png_with_header_size(5000, 4000))  # IDAT far too short: never decoded
    assert img.size == (5000, 4000)


# --------------------------------------------------------------------------- converted


def test_rgb_jpeg_passes_through():
    img = decode_rgb(encode(gradient_rgb(), "JPEG", quality=95))
    assert img.mode == "RGB" and img.size == (64, 48)


def test_grayscale_becomes_rgb():
    gray = gradient_rgb().convert("L")
    for fmt in ("JPEG", "PNG"):
        out = np.asarray(decode_rgb(encode(gray, fmt)))
        assert out.shape == (48, 64, 3)
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_one_bit_becomes_rgb():
    out = np.asarray(decode_rgb(encode(gradient_rgb().convert("1"), "PNG")))
    assert out.shape == (48, 64, 3) and set(np.unique(out)) <= {0, 255}


def test_cmyk_jpeg_keeps_its_colours():
    rgb = gradient_rgb(96, 64)
    data = encode(rgb.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decode_rgb(data)
    assert out.mode == "RGB"
    assert np.abs(np.asarray(out, np.int16) - np.asarray(rgb, np.int16)).mean() < 10


def test_16bit_grayscale_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = np.asarray(decode_rgb(data))[..., 0].astype(np.float32)
    expected = ramp / 257.0
    assert np.abs(out - expected).max() <= 1.0
    assert (out == 255).mean() < 0.01  # a naive convert("RGB") makes ~all of it white


def test_32bit_int_and_float_modes():
    ramp16 = np.linspace(0, 65535, 100 * 10).reshape(10, 100).astype(np.int32)
    out = np.asarray(to_rgb(Image.fromarray(ramp16, "I")))[..., 0]
    assert abs(int(out.max()) - 255) <= 1 and out.mean() == pytest.approx(127.5, abs=2)
    ramp8 = (ramp16 // 257).astype(np.int32)  # an 8-bit image stored as "I" stays as is
    assert np.abs(np.asarray(to_rgb(Image.fromarray(ramp8, "I")))[..., 0] - ramp8).max() <= 1
    unit = np.linspace(0, 1, 1000, dtype=np.float32).reshape(10, 100)
    outf = np.asarray(to_rgb(Image.fromarray(unit, "F")))[..., 0]
    assert outf.max() == 255 and outf.min() == 0


def test_rgba_is_composited_on_white():
    arr = np.zeros((20, 30, 4), np.uint8)
    arr[..., 0] = 200  # red-ish
    arr[:, :15, 3] = 255  # left half opaque, right half fully transparent
    out = np.asarray(decode_rgb(encode(Image.fromarray(arr, "RGBA"), "PNG")))
    assert (out[:, :15] == [200, 0, 0]).all()
    assert (out[:, 15:] == 255).all()


def test_la_half_transparent_is_blended_with_white():
    arr = np.zeros((10, 10, 2), np.uint8)
    arr[..., 1] = 128  # black at 50 % alpha
    out = np.asarray(decode_rgb(encode(Image.fromarray(arr, "LA"), "PNG")))
    assert np.all(np.abs(out.astype(int) - 127) <= 2)


def test_palette_with_transparency_is_composited_on_white():
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    for y in range(16):
        for x in range(8):
            pal.putpixel((x, y), 1)
    for fmt in ("PNG", "GIF"):
        data = encode(pal, fmt, transparency=0)
        img = Image.open(io.BytesIO(data))
        assert img.mode == "P" and "transparency" in img.info
        out = np.asarray(decode_rgb(data))
        assert (out[:, :8] == [255, 0, 0]).all(), fmt  # opaque palette colour
        assert (out[:, 8:] == 255).all(), fmt  # transparent index -> white, not blue


def test_exif_orientation_is_applied():
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :30] = [255, 0, 0]  # left red
    arr[:, 30:] = [0, 0, 255]  # right blue
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    out = decode_rgb(encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.size == (40, 60)
    a = np.asarray(out, np.int16)
    # after a clockwise turn the left (red) half is on top, the blue half at the bottom
    assert a[5, 20, 0] > 200 and a[5, 20, 2] < 60
    assert a[55, 20, 2] > 200 and a[55, 20, 0] < 60


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_broken_exif_does_not_lose_the_image():
    data = encode(gradient_rgb(), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    assert decode_rgb(data).size == (64, 48)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_give_the_first_frame(fmt):
    if fmt == "WEBP" and not Image.registered_extensions().get(".webp"):
        pytest.skip("Pillow built without WebP")
    frames = [Image.new("RGB", (20, 10), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw
    )
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    out = np.asarray(decode_rgb(data), np.int16)
    assert out.shape == (10, 20, 3)
    assert out[..., 0].min() > 240 and out[..., 2].max() < 15  # red


def test_tiny_and_extreme_aspect_images_decode():
    assert decode_rgb(encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")).size == (1, 1)
    assert decode_rgb(encode(Image.new("RGB", (4000, 3), (9, 9, 9)), "PNG")).size == (4000, 3)
    assert decode_rgb(encode(Image.new("RGB", (3, 4000), (9, 9, 9)), "JPEG")).size == (3, 4000)


# --------------------------------------------------------------------------- fast decode, pre-crop


def test_draft_keeps_the_short_side_above_the_minimum():
    data = synthetic_jpeg(2000, 1400, seed=1)
    assert decode_rgb(data).size == (2000, 1400)
    fast = decode_rgb(data, min_short_side=336)  # 1400 // 336 = 4 -> quarter scale
    assert fast.size == (500, 350)
    assert decode_rgb(data, min_short_side=512).size == (1000, 700)
    assert decode_rgb(data, min_short_side=800).size == (2000, 1400)  # no room for 2x
    png = encode(Image.new("RGB", (2000, 1400)), "PNG")
    assert decode_rgb(png, min_short_side=336).size == (2000, 1400)  # only JPEGs


def test_precrop_leaves_ordinary_images_alone():
    for size in [(1, 1), (224, 224), (2000, 1500), (900, 2000), (1000, 250)]:
        assert precrop_box(size, resize_short=256, crop=(224, 224)) is None


@pytest.mark.parametrize("size", [(4000, 3), (3, 4000), (40000, 1), (5000, 1000)])
def test_precrop_bounds_extreme_aspect_ratios(size):
    box = precrop_box(size, resize_short=256, crop=(224, 224))
    assert box is not None
    w, h = box[2] - box[0], box[3] - box[1]
    short = min(size)
    assert min(w, h) == short  # the short side is untouched
    resized_long = max(w, h) * 256 / short
    assert resized_long >= 224  # enough for the crop
    assert resized_long * 256 * 3 < 8e6  # and small: under 8 MB (4000x3 unclipped: 262 MB)
    # centred
    assert abs((box[0] + box[2]) - size[0]) <= 1 and abs((box[1] + box[3]) - size[1]) <= 1


def test_precrop_then_transform_matches_the_plain_transform():
    """Pre-cropping an extreme panorama changes the model input by (almost) nothing."""
    from timm.data import create_transform

    cfg = dict(
        input_size=(3, 224, 224),
        interpolation="bicubic",
        crop_pct=0.875,
        crop_mode="center",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    tf = create_transform(**cfg, is_training=False)
    img = to_rgb(Image.open(io.BytesIO(synthetic_jpeg(1500, 250, seed=3))))  # 6:1
    ref = tf(img)
    cropped = precrop_for_center_crop(img, resize_short=256, crop=(224, 224))
    assert cropped.size[0] < 500
    out = tf(cropped)
    assert out.shape == ref.shape
    assert (out - ref).abs().mean() < 0.01
