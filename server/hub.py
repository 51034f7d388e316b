"""Model references: a local folder, or a Hugging Face hub id found in the standard cache.

A profile names each model by reference: an existing folder (absolute, or relative to the
working directory) is used as it is; anything else of the form ``org/name`` or
``org/name@revision`` is a hub id, looked up in the Hugging Face cache (``HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) through huggingface_hub's own cache code.
Serving never downloads: :func:`resolve` only reads the cache, and a missing model is an error
that names ``babelcap models pull``; :mod:`babelcap.server.pull` is the one place that downloads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError

__all__ = [
    "ResolvedModel",
    "babelcap_cache_dir",
    "hub_cache_dir",
    "hub_env",
    "is_hub_id",
    "is_offline",
    "nllb_ct2_folder",
    "resolve",
    "split_ref",
]

# org/name with huggingface_hub's characters, optionally @revision (a branch, tag or commit).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}(@[\w./-]+)?$")
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model reference points on this machine."""

    ref: str
    """The reference as the profile gave it."""
    path: Path
    """The folder to load: the local folder, or the cached snapshot (``.../snapshots/<sha>``)."""
    repo_id: str | None = None
    """The hub id, without ``@revision``; None for a local folder."""
    revision: str | None = None
    """The commit the snapshot belongs to; None for a local folder."""

    @property
    def is_local(self) -> bool:
        """True for a folder named directly, False for a hub id found in the cache."""
        return self.repo_id is None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def is_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids reaching the hub now."""
    return _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time the way
    huggingface_hub reads it at import: ``HF_HUB_CACHE``, ``$HF_HOME/hub``,
    ``$XDG_CACHE_HOME/huggingface/hub``, ``~/.cache/huggingface/hub``."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(os.path.expandvars(cache)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def babelcap_cache_dir() -> Path:
    """Where babelcap keeps what it derives from downloaded models (converted NLLB):
    ``BABELCAP_CACHE``, else ``$XDG_CACHE_HOME/babelcap``, else ``~/.cache/babelcap``."""
    cache = os.environ.get(defaults.CACHE_DIR_VARIABLE)
    if cache:
        return Path(cache).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / defaults.CACHE_DIR_NAME


def hub_env() -> dict[str, str]:
    """Environment for a child process (vLLM) that must read models from the same cache
    without touching the network: the cache folder and ``HF_HUB_OFFLINE=1``."""
    return {"HF_HUB_CACHE": str(hub_cache_dir()), "HF_HUB_OFFLINE": "1"}


def is_hub_id(ref: str | Path) -> bool:
    """True when ``ref`` names a hub repository (``org/name[@revision]``) rather than a folder:
    an existing path, or one starting with ``/``, ``~`` or ``.``, is a folder."""
    text = str(ref)
    if text.startswith(("/", "~", ".")) or Path(text).exists():
        return False
    return bool(_HUB_ID.match(text)) and "--" not in text.split("@")[0]


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; no ``@``: revision None."""
    repo_id, _, revision = ref.partition("@")
    return repo_id, revision or None


def _pull_hint(profile: str | None) -> str:
    return f"babelcap models pull {profile or 'PROFILE'}"


def _offline_note() -> str:
    variables = [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if _truthy(v)]
    if not variables:
        return ""
    named = " and ".join(f"{v}=1" for v in variables)
    verb, pronoun = ("is", "it") if len(variables) == 1 else ("are", "them")
    return f"; {named} {verb} set, so nothing is downloaded: unset {pronoun} for the pull"


def _incomplete(folder: Path) -> list[str]:
    """Files an interrupted download left out of a snapshot (a snapshot folder exists from the
    first file on; huggingface_hub cannot tell a complete one from a partial one)."""
    import json

    if not (folder / "config.json").is_file():
        return ["config.json"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        return sorted(shard for shard in shards if not (folder / shard).is_file())
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    return [] if any(w.is_file() for w in weights) else ["*.safetensors"]


def resolve(
    ref: str | Path, *, profile: str | None = None, cache_dir: Path | None = None
) -> ResolvedModel:
    """The local folder of a model reference, never downloading.

    An existing folder is returned as it is. A hub id (``org/name`` or ``org/name@revision``;
    ``main`` when none) is found in the Hugging Face cache through ``snapshot_download(...,
    local_files_only=True)``. Raises :class:`ConfigurationError` naming the reference and the
    fix (``babelcap models pull PROFILE``; ``profile`` fills in the name) when it is missing or
    incomplete."""
    text = str(ref)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return ResolvedModel(ref=text, path=folder.resolve())
    if not is_hub_id(text):
        raise ConfigurationError(
            f"model {text!r} is neither an existing folder nor a hub id (org/name[@revision]): "
            "fix the profile's path, or name the model by its Hugging Face id"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, revision = split_ref(text)
    cache = cache_dir or hub_cache_dir()
    try:
        found = Path(
            snapshot_download(
                repo_id, revision=revision or "main", cache_dir=cache, local_files_only=True
            )
        )
    except LocalEntryNotFoundError as error:
        raise ConfigurationError(
            f"model {text!r} is not in the Hugging Face cache {cache} "
            f"(HF_HUB_CACHE, or HF_HOME/hub): download it with `{_pull_hint(profile)}`"
            f"{_offline_note()}"
        ) from error
    missing = _incomplete(found)
    if missing:
        raise ConfigurationError(
            f"model {text!r} is only partly downloaded in {found} (missing {', '.join(missing)}):"
            f" finish it with `{_pull_hint(profile)}`{_offline_note()}"
        )
    return ResolvedModel(ref=text, path=found, repo_id=repo_id, revision=found.name)


def nllb_ct2_folder(
    ref: str | Path,
    compute_type: str = "default",
    *,
    profile: str | None = None,
    cache_root: Path | None = None,
) -> Path:
    """The CTranslate2 folder to serve for an NLLB reference (a CTranslate2 folder, a Hugging
    Face NLLB folder, or a cached hub id), converted once into babelcap's cache if needed:
    :func:`babelcap.server.translation.convert.nllb_ct2_folder`, reachable from here so that
    serving code finds every model through this module. Blocking."""
    from babelcap.server.translation import convert

    return convert.nllb_ct2_folder(ref, compute_type, profile=profile, cache_root=cache_root)
