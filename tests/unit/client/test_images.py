"""Image preparation: the classic conversion mistakes do not happen, and size is capped."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from babelcap.client.images import prepare_image, target_size
from babelcap.core.errors import MediaDecodeError


def _decoded(prepared):
    return Image.open(io.BytesIO(prepared.jpeg)).convert("RGB")


def _centre(image):
    return image.getpixel((image.width // 2, image.height // 2))


def _close(rgb, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, expected, strict=True))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4000, 3000), (1120, 840)),  # 2x2 tiles
        ((3000, 4000), (840, 1120)),
        ((4000, 1000), (2240, 560)),  # 4x1 tiles
        ((500, 400), (500, 400)),  # never upscaled
        ((12000, 100), (2240, 19)),
    ],
)
def test_target_size_is_what_llama_vision_keeps(size, expected):
    assert target_size(*size, 560, 4) == expected


def test_a_12_megapixel_jpeg_is_sent_at_the_model_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (200, 40, 40)).save(path, quality=90)
    prepared = prepare_image(path)
    assert _decoded(prepared).size == (1120, 840)
    assert (prepared.meta["width"], prepared.meta["height"]) == (4000, 3000)
    assert (prepared.meta["sent_width"], prepared.meta["sent_height"]) == (1120, 840)


def test_transparent_logo_is_composited_on_white_not_black(tmp_path):
    path = tmp_path / "logo.png"
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    image.paste((30, 170, 40, 255), (0, 0, 100, 20))
    image.save(path)
    out = _decoded(prepare_image(path))
    assert _close(_centre(out), (255, 255, 255))
    assert _close(out.getpixel((50, 5)), (30, 170, 40))


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "p.gif"
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    image.paste(1, (0, 0, 40, 20))
    image.save(path, transparency=0)
    out = _decoded(prepare_image(path))
    assert _close(out.getpixel((20, 5)), (200, 30, 30))
    assert _close(out.getpixel((20, 35)), (255, 255, 255))


def test_16_bit_grayscale_keeps_its_brightness(tmp_path):
    path = tmp_path / "gray16.png"
    Image.fromarray(np.full((64, 64), 16384, dtype=np.uint16)).save(path)  # 25% grey
    value = _centre(_decoded(prepare_image(path)))[0]
    assert 55 <= value <= 75  # naive convert("L") gives 255


def test_cmyk_jpeg_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (64, 64), (220, 30, 30)).convert("CMYK").save(path, quality=95)
    assert _close(_centre(_decoded(prepare_image(path))), (220, 30, 30), 20)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (200, 100), (30, 60, 220))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(path, exif=exif)
    prepared = prepare_image(path)
    assert _decoded(prepared).size == (100, 200)
    assert (prepared.meta["width"], prepared.meta["height"]) == (100, 200)
    assert prepared.meta["exif_orientation"] == 6


def test_animated_gif_uses_its_middle_frame_and_says_so(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (32, 32), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_image(path)
    assert prepared.meta["animated"] and prepared.meta["frames"] == 3
    assert _close(_centre(_decoded(prepared)), (0, 255, 0), 30)


def test_pixel_cap_is_checked_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # small file, 144 MP
    with pytest.raises(MediaDecodeError, match="144 megapixels, over the 90 MP limit"):
        prepare_image(path)


def test_truncated_and_non_images_fail_clearly(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(MediaDecodeError, match=r"truncated\.jpg"):
        prepare_image(truncated)
    text = tmp_path / "text.jpg"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(MediaDecodeError, match="not an image Pillow can read"):
        prepare_image(text)


def test_pillows_own_bomb_refusal_is_a_clear_error_and_its_limit_is_left_alone(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 10000)).save(path)  # 200 MP: over twice Pillow's default limit
    with pytest.raises(MediaDecodeError, match=r"huge\.png: .*raise --max-pixels"):
        prepare_image(path, max_pixels=300_000_000)
    assert limit == Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize(
    ("fmt", "suffix", "mode"),
    [("ICO", ".ico", "RGBA"), ("PPM", ".ppm", "RGB"), ("PPM", ".pgm", "L"), ("TGA", ".tga", "RGB"),
     ("PCX", ".pcx", "RGB"), ("SGI", ".sgi", "RGB"), ("QOI", ".qoi", "RGB"),
     ("DDS", ".dds", "RGB"), ("XBM", ".xbm", "1"),
     ("TIFF", ".tif", "RGB"), ("BMP", ".bmp", "RGB"), ("JPEG2000", ".jp2", "RGB")],
)  # fmt: skip
def test_every_format_pillow_reads_is_read(tmp_path, fmt, suffix, mode):
    path = tmp_path / f"image{suffix}"
    colour = (30, 60, 220) if mode != "1" else (255, 255, 255)
    source = Image.new("RGB", (48, 48), colour).convert(mode)
    source.save(path, fmt)
    prepared = prepare_image(path, tile_size=56)
    assert prepared.meta["format"] == fmt
    assert (prepared.meta["width"], prepared.meta["height"]) == (48, 48)
    expected = source.convert("RGB").getpixel((0, 0))
    assert _close(_centre(_decoded(prepared)), expected, 20)


@pytest.mark.parametrize(
    ("size", "stacked", "sent"),
    [((20000, 50), "top to bottom", (1000, 1114)), ((50, 20000), "left to right", (1114, 1000)),
     ((12000, 100), "top to bottom", (1002, 1120))],
)  # fmt: skip
def test_an_extreme_aspect_ratio_is_split_into_stacked_pieces(tmp_path, size, stacked, sent):
    path = tmp_path / "strip.png"
    Image.new("RGB", size, (220, 30, 30)).save(path)
    prepared = prepare_image(path)
    meta = prepared.meta
    assert meta["split"]["stacked"] == stacked and meta["split"]["pieces"] >= 11
    assert (meta["width"], meta["height"]) == size
    out = _decoded(prepared)
    assert out.size == sent == (meta["sent_width"], meta["sent_height"])
    assert target_size(*out.size, 560, 4) == out.size  # fits the model's tiles as sent
    # Mostly the image's colour (white gaps between the pieces), not a strip a pixel high.
    pixels = np.asarray(out).reshape(-1, 3)
    red = np.all(np.abs(pixels.astype(int) - (220, 30, 30)) < 40, axis=1).mean()
    assert red > 0.75


def test_a_wide_banner_within_the_tile_grid_is_not_split(tmp_path):
    path = tmp_path / "banner.jpg"
    Image.new("RGB", (4000, 500), (30, 170, 40)).save(path)  # 8:1, two tiles' worth tall
    prepared = prepare_image(path)
    assert "split" not in prepared.meta
    assert _decoded(prepared).size == (2240, 280)


def test_a_split_keeps_the_content_in_reading_order(tmp_path):
    path = tmp_path / "gradient.png"
    ramp = np.tile(np.linspace(0, 255, 4000).astype(np.uint8), (40, 1))
    Image.fromarray(ramp).save(path)  # dark on the left, light on the right, 100:1
    out = np.asarray(_decoded(prepare_image(path)).convert("L"), dtype=float)
    rows = [out[i] for i in range(out.shape[0]) if out[i].mean() < 250]  # not the white gaps
    starts = [row[: len(row) // 10].mean() for row in rows[:: max(1, len(rows) // 8)]]
    assert starts == sorted(starts)  # each piece continues where the one above ended
