"""What a caption run asks of whom: the tasks' prompts and the model (and media hints) for each
media kind, from the servers' ``/v1/models``."""

from __future__ import annotations

from dataclasses import dataclass

from babelcap.client.config import CaptionSettings
from babelcap.client.media import MediaOptions
from babelcap.client.requests import ServerPool, by_role, media_hints
from babelcap.core.errors import ConfigurationError
from babelcap.prompts import TaskPrompt, load_prompts

__all__ = ["Models", "choose_models", "select_tasks"]


@dataclass(frozen=True)
class Models:
    """The model for each media kind (None: not served) and how to prepare its media."""

    image: str | None
    video: str | None
    image_options: MediaOptions
    video_options: MediaOptions


async def choose_models(pool: ServerPool, settings: CaptionSettings) -> Models:
    """Image and video models from the servers' ``/v1/models`` (babelcap lists each model's role
    and media hints), unless named in the settings."""
    listed = await pool.models()
    served = {entry["id"]: entry for entry in listed}
    roles = by_role(listed)
    chosen: dict[str, tuple[str | None, dict[str, int]]] = {}
    for role, explicit in (("image", settings.image_model), ("video", settings.video_model)):
        if explicit is not None and explicit not in served:
            raise ConfigurationError(
                f"--{role}-model {explicit!r} is not served by {', '.join(pool.urls)}; served: "
                f"{', '.join(served) or 'none'}"
            )
        entry = served[explicit] if explicit is not None else roles.get(role)
        chosen[role] = (entry["id"] if entry else None, media_hints(entry))
    base = MediaOptions(max_pixels=settings.max_pixels, quality=settings.jpeg_quality)
    image_hints, video_hints = chosen["image"][1], chosen["video"][1]
    return Models(
        image=chosen["image"][0],
        video=chosen["video"][0],
        image_options=MediaOptions(
            tile_size=image_hints.get("tile_size", base.tile_size),
            max_tiles=image_hints.get("max_tiles", base.max_tiles),
            max_pixels=base.max_pixels,
            quality=base.quality,
        ),
        video_options=MediaOptions(
            frames=settings.frames or video_hints.get("frames", base.frames),
            frame_size=video_hints.get("frame_size", base.frame_size),
            max_pixels=base.max_pixels,
            quality=base.quality,
        ),
    )


def select_tasks(settings: CaptionSettings) -> list[TaskPrompt]:
    prompts = load_prompts(settings.prompts)
    unknown = [t for t in settings.tasks if t not in prompts]
    if unknown or not settings.tasks:
        raise ConfigurationError(
            f"unknown task(s) {', '.join(unknown) or '(none given)'}; available: "
            f"{', '.join(sorted(prompts))} (add your own with --prompts FILE)"
        )
    for name in settings.translate:
        if name not in settings.tasks:
            raise ConfigurationError(f"--translate {name}: not among --tasks {settings.tasks}")
        if prompts[name].output != "text":
            raise ConfigurationError(f"--translate {name}: only text tasks are translated")
    return [prompts[name] for name in dict.fromkeys(settings.tasks)]
