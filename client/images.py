"""Prepare an image for the image model: decode safely, orient, flatten, resize, encode as JPEG.

Follows what was measured here (docs/architecture.md, "Media"): the pixel count is checked from
the header before any pixel is decoded (decompression bombs); JPEGs are decoded at a reduced
scale (``draft``) when the model sees less; EXIF orientation is applied; alpha is composited
onto white (not black); 16-bit, CMYK and palette images are converted correctly; an animated
image contributes its middle frame, and says so; the result is no larger than what the model
uses (Llama 3.2 Vision: 560 px tiles, at most 4), so 12 MP never crosses the wire.

An image too long for the model's tile grid (more than 4 x ``max_tiles`` to 1: a 20000x50
banner) would reach it as a strip a few pixels high: it is cut along its long side into pieces
that are stacked (a wide image top to bottom, a tall one left to right, with a thin white gap),
so the model sees all of it at a legible scale, and the record says so (``split``). Padding
keeps the strip illegible and a centre crop loses most of it.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from babelcap.client.storage import RemoteObject, open_object
from babelcap.core import defaults
from babelcap.core.errors import MediaDecodeError

__all__ = ["PreparedImage", "pieces", "prepare_image", "target_size", "to_rgb"]

try:  # HEIC/HEIF when the optional plugin is installed (pip install pillow-heif)
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

_ORIENTATION = 0x0112


@dataclass(frozen=True)
class PreparedImage:
    """The JPEG to send and what was learnt about the source."""

    jpeg: bytes
    meta: dict[str, Any]


def target_size(width: int, height: int, tile_size: int, max_tiles: int) -> tuple[int, int]:
    """The largest size the model keeps: the best canvas of at most ``max_tiles`` tiles of
    ``tile_size`` px that the image fits in, never upscaled (the server upscales if it must)."""
    scale = 0.0
    for columns in range(1, max_tiles + 1):
        for rows in range(1, max_tiles // columns + 1):
            scale = max(scale, min(columns * tile_size / width, rows * tile_size / height))
    scale = min(scale, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pieces(width: int, height: int, max_tiles: int) -> int:
    """How many pieces to cut an image into (1: none). Past 4 x ``max_tiles`` to 1 the model
    would see the image less than a quarter of a tile thick; cutting it into about the square
    root of its aspect ratio makes the stack roughly square."""
    ratio = max(width, height) / max(1, min(width, height))
    if ratio <= 4 * max_tiles:
        return 1
    return min(math.ceil(math.sqrt(ratio)), max(width, height))


def _stack(strip: Image.Image, count: int) -> Image.Image:
    """``strip`` cut along its long side into ``count`` pieces, stacked across it with a white
    gap of an eighth of its thickness (at least 1 px)."""
    wide = strip.width >= strip.height
    long_side, thick = (strip.width, strip.height) if wide else (strip.height, strip.width)
    length = math.ceil(long_side / count)
    gap = max(1, round(thick / 8))
    across = count * thick + (count - 1) * gap
    canvas = Image.new("RGB", (length, across) if wide else (across, length), (255, 255, 255))
    for i in range(count):
        start, end = i * length, min(long_side, (i + 1) * length)
        if wide:
            canvas.paste(strip.crop((start, 0, end, thick)), (0, i * (thick + gap)))
        else:
            canvas.paste(strip.crop((0, start, thick, end)), (i * (thick + gap), 0))
    return canvas


def _layout(
    shown: tuple[int, int], tile_size: int, max_tiles: int
) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(pieces, the size to resize the whole image to, the size sent)."""
    count = pieces(*shown, max_tiles)
    if count == 1:
        wanted = target_size(*shown, tile_size, max_tiles)
        return 1, wanted, wanted
    width, height = shown
    wide = width >= height
    long_side, thick = (width, height) if wide else (height, width)
    across = count * thick + (count - 1) * max(1, round(thick / 8))
    stacked = (math.ceil(long_side / count), across)
    sent = target_size(*(stacked if wide else stacked[::-1]), tile_size, max_tiles)
    scale = sent[0] / (stacked[0] if wide else stacked[1])
    resized = (max(count, round(long_side * scale)), max(1, round(thick * scale)))
    return count, resized if wide else resized[::-1], sent


def _flatten(image: Image.Image) -> Image.Image:
    """Alpha composited onto white: a transparent logo stays a logo, not a black square."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode Pillow opens, without the classic conversion mistakes."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _flatten(image)
    if mode.startswith("I") or mode == "F":
        # 16-bit (or 32-bit) grayscale: Pillow's convert("L") clips to 255 (a white image).
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or pixels.max() > 255 else 255.0
        if mode == "F":
            top = max(1.0, float(pixels.max()))
        gray = np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK (Adobe inversion handled on decode), YCbCr


def prepare_image(
    path: Path | RemoteObject,
    *,
    tile_size: int = defaults.IMAGE_TILE_SIZE,
    max_tiles: int = defaults.IMAGE_MAX_TILES,
    max_pixels: int = defaults.MAX_PIXELS,
    quality: int = defaults.JPEG_QUALITY,
) -> PreparedImage:
    """Decode ``path`` (a file or a listed object) and return it as a JPEG of the size the
    image model uses."""
    if isinstance(path, RemoteObject):
        with open_object(path) as handle:
            return _prepare(handle, path, tile_size, max_tiles, max_pixels, quality)
    return _prepare(path, path, tile_size, max_tiles, max_pixels, quality)


def _prepare(
    source: Path | IO[bytes], path: Path | RemoteObject, tile_size: int, max_tiles: int,
    max_pixels: int, quality: int,
) -> PreparedImage:  # fmt: skip
    try:
        with warnings.catch_warnings():
            # Pillow warns above its limit and refuses above twice it; the header check below
            # is the one that decides, and it names --max-pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(source)
    except Image.DecompressionBombError as error:
        raise MediaDecodeError(
            f"{path}: {error}; raise --max-pixels if the image is genuine"
        ) from error
    except UnidentifiedImageError as error:
        raise MediaDecodeError(
            f"{path}: not an image Pillow can read (for HEIC install pillow-heif)"
        ) from error
    except OSError as error:
        raise MediaDecodeError(f"{path}: cannot open the image: {error}") from error
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise MediaDecodeError(
                f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                f"{max_pixels / 1e6:.0f} MP limit (a decompression bomb?); raise --max-pixels "
                "if the image is genuine"
            )
        meta: dict[str, Any] = {"format": image.format, "mode": image.mode}
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            # Animated GIF/WebP/APNG: the middle frame is more typical than a title frame.
            image.seek(frames // 2)
            meta |= {"animated": True, "frames": frames, "frame_used": frames // 2}
        orientation = image.getexif().get(_ORIENTATION, 1)
        swapped = orientation in (5, 6, 7, 8)
        shown = (height, width) if swapped else (width, height)
        count, wanted, sent = _layout(shown, tile_size, max_tiles)
        try:
            # JPEG only: decode at 1/2, 1/4 or 1/8 scale, never below what is wanted.
            image.draft("RGB", wanted[::-1] if swapped else wanted)
            image.load()
            image = ImageOps.exif_transpose(image)
            image = to_rgb(image)
            if image.size != wanted:
                image = image.resize(wanted, Image.Resampling.BICUBIC, reducing_gap=2.0)
        except (OSError, ValueError, SyntaxError) as error:
            raise MediaDecodeError(
                f"{path}: the image data is damaged ({error}); re-export or remove the file"
            ) from error
        if count > 1:
            image = _stack(image, count)
            if image.size != sent:  # gaps rounded at the smaller scale
                image = image.resize(sent, Image.Resampling.BICUBIC)
            meta["split"] = {
                "pieces": count,
                "stacked": "top to bottom" if shown[0] >= shown[1] else "left to right",
            }
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
    meta |= {
        "width": shown[0],
        "height": shown[1],
        "sent_width": image.width,
        "sent_height": image.height,
    }
    if orientation != 1:
        meta["exif_orientation"] = orientation
    return PreparedImage(buffer.getvalue(), meta)
