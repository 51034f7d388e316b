"""Where the committed tiny stand-in models live: written by ``babelcap tiny build``
(:mod:`babelcap.converters.tiny`), served by the ``tiny-cpu`` profiles (:mod:`babelcap.server`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["STAND_INS", "STAND_IN_COLOURS", "STAND_IN_NAMES", "StandIn", "stand_in"]

StandIn = Literal["mllama", "llava-next-video", "nllb", "nllb-ct2"]

#: The folder of the committed stand-ins, inside the installed package.
STAND_INS = Path(__file__).resolve().parent.parent / "stand_ins"

#: The stand-ins that are trained; ``nllb-ct2`` is converted from ``nllb``.
STAND_IN_NAMES: tuple[StandIn, ...] = ("mllama", "llava-next-video", "nllb")


#: The colour vocabulary the image and video stand-ins are trained to name (RGB centres): what
#: tests and benchmarks check their answers against.
STAND_IN_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (250, 140, 10),
    "purple": (140, 40, 180),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}


def stand_in(name: StandIn, root: Path | None = None) -> Path:
    """The folder of one stand-in (under ``root`` instead of the committed folder if given)."""
    return (root or STAND_INS) / name
