"""``babelcap models pull``'s download: a profile's hub models into the Hugging Face cache.

huggingface_hub does the work (its progress bars, its resume of interrupted files, its token
lookup); this module chooses the files vLLM needs, checks the disk has room, and turns the
hub's refusals into errors that say what to do (a gated licence to accept, a token to set).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from babelcap.core.errors import ConfigurationError, ServerUnavailableError
from babelcap.server.hub import hub_cache_dir, is_hub_id, is_offline, resolve, split_ref

__all__ = ["WANTED_PATTERNS", "PullResult", "pull", "wanted_files"]

log = logging.getLogger(__name__)

#: The files of a hub repository that vLLM and CTranslate2's converter read: configs, weights,
#: tokenizers and chat templates; ``*.bin`` weights only when there are no safetensors.
WANTED_PATTERNS = ("*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "tokenizer*")
_FALLBACK_WEIGHTS = ("*.bin",)
#: Meta's original checkpoints (consolidated.pth and its own tokenizer) duplicate the weights.
_IGNORED = ("original/*",)


@dataclass
class PullResult:
    """What :func:`pull` did for one reference."""

    ref: str
    status: Literal["local", "present", "downloaded", "would-download"]
    """``local``: a folder, nothing to fetch; ``present``: already in the cache; ``downloaded``;
    ``would-download``: a dry run's answer."""
    path: Path | None = None
    """The snapshot folder (None for a dry run of a model not yet cached)."""
    revision: str | None = None
    files: list[str] = field(default_factory=list)
    """The repository files that are (or would be) fetched."""
    total_bytes: int | None = None
    """Size of those files; None when the hub was not asked (offline)."""
    missing_bytes: int | None = None
    """What was (or would be) downloaded; None when unknown."""


def wanted_files(filenames: Iterable[str]) -> list[str]:
    """The repository files a pull fetches: :data:`WANTED_PATTERNS`, plus ``*.bin`` weights
    only when the repository has no safetensors, never Meta's ``original/`` checkpoint."""
    names = [n for n in filenames if not any(fnmatch(n, p) for p in _IGNORED)]
    patterns = list(WANTED_PATTERNS)
    if not any(n.endswith(".safetensors") for n in names):
        patterns += _FALLBACK_WEIGHTS
    return sorted(n for n in names if any(fnmatch(Path(n).name, p) for p in patterns))


def _free_bytes(path: Path) -> int:
    existing = path
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def _network_errors() -> tuple[type[Exception], ...]:
    """What huggingface_hub raises when the hub cannot be reached: requests' errors before
    huggingface_hub 1.0, httpx's after."""
    import httpx

    errors: list[type[Exception]] = [httpx.TransportError]
    try:
        import requests
    except ImportError:
        return tuple(errors)
    return (
        *errors,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )


def _hub_error(repo_id: str, error: Exception) -> ConfigurationError | ServerUnavailableError:
    """A huggingface_hub or network error as babelcap's, with what to do."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"https://huggingface.co/{repo_id}"
    if isinstance(error, OfflineModeIsEnabled):
        return ConfigurationError(
            f"cannot fetch {repo_id}: huggingface_hub is in offline mode (HF_HUB_OFFLINE was set "
            "when it was imported): unset HF_HUB_OFFLINE and rerun"
        )
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, GatedRepoError) or (
        isinstance(error, HfHubHTTPError) and status in (401, 403) and get_token() is None
    ):
        token = (
            "the token in HF_TOKEN has no access to it"
            if get_token() is not None
            else "no token is set"
        )
        return ConfigurationError(
            f"{repo_id} is a gated model and {token}: accept its licence at {page} with your "
            "Hugging Face account, then set HF_TOKEN to an access token of that account"
        )
    if isinstance(error, RevisionNotFoundError):
        return ConfigurationError(f"{repo_id} has no such revision: check the @revision at {page}")
    if isinstance(error, RepositoryNotFoundError):
        return ConfigurationError(
            f"no model {repo_id} on the hub (or it is private and HF_TOKEN cannot see it): "
            f"check the id at {page}"
        )
    if isinstance(error, (*_network_errors(), LocalEntryNotFoundError)):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        return ServerUnavailableError(
            f"cannot reach the Hugging Face hub at {endpoint} to fetch {repo_id} ({error}): "
            "check the network (or HF_ENDPOINT) and rerun; finished files are kept"
        )
    return ConfigurationError(f"the hub refused {repo_id}: {error}")


def _cached_bytes(repo_id: str, revision: str, files: dict[str, int], cache: Path) -> int:
    """Bytes of ``files`` (name -> size) not yet in the cache at ``revision``."""
    from huggingface_hub import try_to_load_from_cache

    missing = 0
    for name, size in files.items():
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache, revision=revision)
        if not isinstance(found, str):
            missing += size
    return missing


def _pull_one(
    ref: str,
    *,
    token: str | None,
    dry_run: bool,
    cache: Path,
    profile: str | None,
) -> PullResult:
    repo_id, revision = split_ref(ref)
    if is_offline():
        # Nothing may be fetched: report what the cache holds, or say why it cannot be pulled.
        resolved = resolve(ref, profile=profile, cache_dir=cache)
        return PullResult(ref, "present", resolved.path, resolved.revision)
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    # LocalEntryNotFoundError: the hub went away during the download.
    refused: tuple[type[Exception], ...] = (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        *_network_errors(),
    )
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        info: Any = HfApi(endpoint=endpoint, token=token).model_info(
            repo_id, revision=revision, files_metadata=True
        )
    except refused as error:
        raise _hub_error(repo_id, error) from error
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    files = wanted_files(sizes)
    chosen = {name: sizes[name] for name in files}
    total = sum(chosen.values())
    missing = _cached_bytes(repo_id, info.sha, chosen, cache)
    if dry_run:
        status: Literal["present", "would-download"] = (
            "present" if not missing else "would-download"
        )
        path = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / info.sha
        return PullResult(
            ref, status, path if not missing else None, info.sha, files, total, missing
        )
    free = _free_bytes(cache)
    if missing and free < missing * 1.05:
        raise ConfigurationError(
            f"not enough disk space for {repo_id} in {cache}: {missing / 2**30:.1f} GiB to "
            f"download, {free / 2**30:.1f} GiB free; free some, or point HF_HOME elsewhere"
        )
    log.info("pulling %s (%d files, %.2f GiB to fetch)", ref, len(files), missing / 2**30)
    try:
        # The branch or tag, not the commit: huggingface_hub then records refs/<revision>, which
        # is what resolve() reads offline.
        folder = snapshot_download(
            repo_id,
            revision=revision or "main",
            cache_dir=cache,
            allow_patterns=files,
            token=token,
            endpoint=endpoint,
        )
    except refused as error:
        raise _hub_error(repo_id, error) from error
    status_done: Literal["present", "downloaded"] = "downloaded" if missing else "present"
    return PullResult(ref, status_done, Path(folder), Path(folder).name, files, total, missing)


def pull(
    refs: Sequence[str | Path],
    *,
    token: str | None = None,
    dry_run: bool = False,
    profile: str | None = None,
    cache_dir: Path | None = None,
) -> list[PullResult]:
    """Download every hub model of ``refs`` into the Hugging Face cache (folders are skipped),
    with huggingface_hub's progress bars; an interrupted pull resumes where it stopped.

    ``token`` None lets huggingface_hub find one (``HF_TOKEN``, or ``hf auth login``'s file);
    it is never logged. Only :func:`wanted_files` are fetched, after checking the disk has room
    for them. With ``dry_run`` nothing is fetched: each result says what would be, and how big.
    With ``HF_HUB_OFFLINE=1`` each model is reported present, or is an error naming it.
    Raises :class:`ConfigurationError` (gated without access, unknown id, no room) or
    :class:`ServerUnavailableError` (hub unreachable)."""
    cache = cache_dir or hub_cache_dir()
    results = []
    for ref in refs:
        text = str(ref)
        if not is_hub_id(text):
            local = resolve(text, profile=profile, cache_dir=cache)
            results.append(PullResult(text, "local", local.path))
            continue
        results.append(_pull_one(text, token=token, dry_run=dry_run, cache=cache, profile=profile))
    return results
