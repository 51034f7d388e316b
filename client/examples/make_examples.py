"""The bundled example media: ``python -m client.examples.make_examples``.

Solid-colour ads the tiny stand-ins can caption checkably: a JPEG with EXIF orientation, a
transparent PNG logo, and an MP4 whose four seconds are red, green, blue and yellow.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
_SECONDS = [("red", (220, 30, 30)), ("green", (30, 170, 40)), ("blue", (30, 60, 220)),
            ("yellow", (240, 220, 30))]  # fmt: skip


def make_examples(folder: Path = HERE) -> list[Path]:
    """Write the example files into ``folder``; returns their paths."""
    product = folder / "red-product.jpg"
    image = Image.new("RGB", (640, 480), (220, 30, 30))
    image.paste((250, 250, 250), (40, 40, 200, 160))  # a label: the red still dominates
    image.save(product, "JPEG", quality=85)

    logo = folder / "green-logo.png"
    rgba = Image.new("RGBA", (256, 256), (30, 170, 40, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 256, 48))  # a transparent band
    rgba.save(logo)

    video = folder / "four-colours.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.time_base = Fraction(1, 8)
        for _, rgb in _SECONDS:
            frame = np.broadcast_to(np.array(rgb, dtype=np.uint8), (96, 128, 3)).copy()
            for _ in range(8):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return [product, logo, video]


if __name__ == "__main__":
    for path in make_examples():
        print(path)  # noqa: T201
