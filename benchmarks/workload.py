"""What a benchmark sends, declared once: the media (yours, or synthetic media generated here,
seeded), the tasks and languages of a real run, how much, and the seed. ``babelcap bench``'s
settings extend it; the standalone benchmarks build one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from babelcap.core.settings import split_list

__all__ = ["Workload", "parse_size", "synthetic_colours", "synthetic_media"]

_NAMES = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black"]


def parse_size(text: str) -> tuple[int, int]:
    """``"1024x768"`` -> (1024, 768)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT") from error
    return width, height


class Workload(BaseModel):
    """What to send: media, tasks, languages, how much, and the seed."""

    media: Path | None = Field(None, description="a folder of your media (default: synthetic)")
    images: int = Field(24, ge=0, description="synthetic images")
    videos: int = Field(8, ge=0, description="synthetic videos")
    image_size: str = Field("1024x768", description="synthetic image size WxH")
    video_size: str = Field("320x240", description="synthetic video size WxH")
    video_seconds: float = Field(4.0, gt=0, description="synthetic video length")
    fps: int = Field(8, ge=1, description="synthetic video frame rate")
    gop: int = Field(8, ge=1, description="synthetic video keyframe interval (frames)")
    textured: bool = Field(
        False, description="synthetic videos with moving texture (costs what real footage costs)"
    )
    tasks: Annotated[list[str], NoDecode] = Field(
        ["description", "tags", "sentiment", "ad"], description="tasks per asset"
    )
    languages: Annotated[list[str], NoDecode] = Field(
        ["fra_Latn", "spa_Latn", "hin_Deva"], description="translation targets ('' for none)"
    )
    assets: int | None = Field(None, ge=1, description="measure this many assets per level")
    duration_s: float | None = Field(
        None, gt=0, description="or feed assets for this many seconds per level"
    )
    warmup: int = Field(2, ge=0, description="assets run before measuring (not counted)")
    seed: int = Field(0, description="seed of the synthetic media and the Poisson arrivals")

    @field_validator("tasks", "languages", mode="before")
    @classmethod
    def _workload_lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("image_size", "video_size")
    @classmethod
    def _sizes(cls, value: str) -> str:
        parse_size(value)
        return value

    def describe(self) -> str:
        """One line for reports."""
        media = (
            f"your media in {self.media}" if self.media else
            f"synthetic: {self.images} images {self.image_size}, {self.videos} videos "
            f"{self.video_size} {self.video_seconds:g} s (GOP {self.gop})"
        )  # fmt: skip
        return (
            f"{media}; tasks {', '.join(self.tasks)}; languages "
            f"{', '.join(self.languages) or 'none'}; "
            + (f"{self.assets} assets" if self.assets else "every asset")
            + f" per level; warm-up {self.warmup}; seed {self.seed}"
        )


def synthetic_colours(workload: Workload) -> dict[str, list[str]]:
    """File name -> the colours the stand-ins should name in it, in order (one for an image,
    the four segments of a video): what :func:`synthetic_media` writes."""
    colours = {
        f"image-{i:04}.jpg": [_NAMES[(i + workload.seed) % len(_NAMES)]]
        for i in range(workload.images)
    }
    for i in range(workload.videos):
        names = [_NAMES[(i + k + workload.seed) % len(_NAMES)] for k in range(4)]
        colours[f"video-{i:04}.mp4"] = names
    return colours


def synthetic_media(workload: Workload, root: Path) -> Path:
    """Seeded images (textured JPEGs) and videos (four colour segments) that the tiny models
    can name, cached by their parameters under ``root``."""
    from babelcap.benchmarks.synthetic import write_image, write_video
    from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS

    image_size, video_size = parse_size(workload.image_size), parse_size(workload.video_size)
    key = (f"i{workload.images}-{workload.image_size}-v{workload.videos}-{workload.video_size}-"
           f"{workload.video_seconds:g}s-g{workload.gop}-s{workload.seed}")  # fmt: skip
    key += f"-f{workload.fps}" + ("-textured" if workload.textured else "")
    folder = root / key
    if (folder / ".complete").exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    expected = synthetic_colours(workload)
    for i in range(workload.images):
        (colour,) = expected[f"image-{i:04}.jpg"]
        write_image(partial / f"image-{i:04}.jpg", image_size, COLOURS[colour], textured=True,
                    seed=workload.seed * 100_003 + i, quality=90)  # fmt: skip
    for i in range(workload.videos):
        names = expected[f"video-{i:04}.mp4"]
        write_video(
            partial / f"video-{i:04}.mp4", [COLOURS[n] for n in names],
            seconds_each=workload.video_seconds / 4, fps=workload.fps, size=video_size,
            gop=workload.gop, textured=workload.textured,
        )  # fmt: skip
    (partial / ".complete").write_text("", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder
