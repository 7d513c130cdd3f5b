"""decode="nvjpeg": JPEGs decoded on the GPU (``torchvision.io.decode_jpeg``) and resized
there; files nvjpeg refuses or should not see go through PIL on the host."""

from __future__ import annotations

import warnings

from artprobe.common.images import ImageDecodeError, open_image, precrop_box


def gpu_decodable(data: bytes, max_pixels) -> bool:
    """Whether a JPEG can go to the GPU decoder as is; the others go through PIL: truncated
    files (no EOI marker: PIL refuses them, nvjpeg might not), CMYK/YCCK, EXIF-rotated ones
    (torchvision's CUDA decoder ignores the orientation) and progressive ones (nvjpeg decodes
    those on the host, one at a time, in the main process)."""
    if not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return False
    head = open_image(data, max_pixels=max_pixels)  # raises ImageDecodeError for bombs
    if (
        head.mode not in ("RGB", "L")
        or head.info.get("progressive")
        or head.info.get("progression")
    ):
        return False
    try:
        return head.getexif().get(0x0112, 1) == 1
    except Exception:  # noqa: BLE001 - broken EXIF: let PIL deal with it
        return False


def _decode_jpeg():
    with warnings.catch_warnings():  # torchvision >= 0.29 points to torchcodec; still works
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg
    return ImageReadMode, decode_jpeg


def _decode_all(datas: list, dev) -> list:
    """Decoded CHW uint8 tensors on ``dev``; None for each file nvjpeg refuses."""
    ImageReadMode, decode_jpeg = _decode_jpeg()
    with warnings.catch_warnings():  # see above; warned on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return decode_jpeg(datas, mode=ImageReadMode.RGB, device=dev)
        except Exception:  # noqa: BLE001 - one bad file fails the whole batched call
            decoded = []
            for d in datas:
                try:
                    decoded.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=dev))
                except Exception:  # noqa: BLE001
                    decoded.append(None)
            return decoded


def decode_jpeg_batch(batch: dict, prep, dev):
    """Decode the batch's JPEGs on ``dev`` and resize/crop them there (uint8 CHW, on device).

    Returns ([(index, tensor)], {index: error}); files nvjpeg refuses go through PIL (from
    the batch's own bytes)."""
    out, errors = [], {}
    jpegs = batch["jpeg"]
    for i, data, img in zip(batch["jpeg_index"], jpegs, _decode_all(jpegs, dev)):
        try:
            if img is None:
                raise RuntimeError("nvjpeg refused it")
            box = precrop_box(
                (img.shape[2], img.shape[1]), resize_short=prep.resize_short, crop=prep.crop
            )
            if box is not None:
                img = img[:, box[1] : box[3], box[0] : box[2]]
            out.append((i, prep.resize_crop(img)))
        except Exception:  # noqa: BLE001 - fall back to PIL on the host
            try:
                out.append((i, prep.decode_on_host(data.numpy().tobytes()).to(dev)))
            except ImageDecodeError as exc:
                errors[i] = exc.reason
            except Exception as exc:  # noqa: BLE001
                errors[i] = f"preprocess failed: {type(exc).__name__}: {str(exc)[:160]}"
    return out, errors


def check_nvjpeg(dev) -> None:
    """Raise a clear error unless torchvision can decode JPEGs on ``dev`` (nvjpeg)."""
    import io as _io

    import torch
    from PIL import Image

    if dev.type != "cuda":
        raise ValueError(f"decode='nvjpeg' decodes on the GPU and needs a CUDA device, got {dev}")
    buf = _io.BytesIO()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(buf, "JPEG")
    try:
        ImageReadMode, decode_jpeg = _decode_jpeg()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            out = decode_jpeg(
                [torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)],
                mode=ImageReadMode.RGB,
                device=dev,
            )[0]
        assert out.shape == (3, 16, 16) and out.is_cuda
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(
            f"decode='nvjpeg' is not usable here (torchvision GPU JPEG decoding failed: {exc}); "
            "use decode='fast'"
        ) from exc
