"""``babelcap serve``: a profile's backends + the translator + the gateway, in one process tree.

Order: the preflight checks (``--check`` stops there), the models resolved to local folders,
the translator loaded and proven by one warm-up translation, the vLLM backends (one after
another on a GPU), then the gateway, which reports ready only once all of that has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from babelcap.core import defaults
from babelcap.core.errors import (
    EXIT_OK,
    EXIT_SETTINGS,
    BackendStartError,
    TranslationError,
)
from babelcap.server.gateway import GatewayConfig, create_gateway
from babelcap.server.preflight import format_checks, preflight, run_checks
from babelcap.server.profiles import Profile, TranslationBackend, load_profile
from babelcap.server.settings import ServeSettings
from babelcap.server.supervisor import Supervisor

if TYPE_CHECKING:
    from babelcap.server.translation import TranslationEngine

__all__ = ["serve"]

#: The warm-up: one short sentence into one language, before the gateway reports ready.
_WARM_UP_TEXT = "A red car is parked in front of a house."
_WARM_UP_TARGET = "fra_Latn"


def serve(settings: ServeSettings) -> int:
    """Run until interrupted; returns the exit code (``--check``: 0 when every check passes,
    2 otherwise)."""
    import uvicorn

    profile = load_profile(settings.profile, settings.config)
    checks = run_checks(profile)
    if settings.check:
        sys.stdout.write(format_checks(profile, checks))
        return EXIT_SETTINGS if any(c.verdict == "FAIL" for c in checks) else EXIT_OK
    preflight(profile, checks)
    for check in checks:
        if check.verdict == "warn":
            sys.stderr.write(f"babelcap serve: warning: {check.name}: {check.detail}\n")
    profile = _with_local_models(profile)
    sys.stderr.write(f"babelcap serve: profile {profile.name} ({profile.description})\n")
    for served in profile.models:
        sys.stderr.write(f"  {served.role:5} {served.backend.name}: {served.backend.model}\n")
    engine = None
    translation = profile.translation
    if translation is not None:
        engine = _warm_translator(translation)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    supervisor = Supervisor(profile, settings.log_dir, host="127.0.0.1")
    if profile.starts_one_by_one() and len(profile.models) > 1:
        sys.stderr.write("babelcap serve: starting the backends one after another (one GPU)\n")
    supervisor.start()
    app = create_gateway(
        supervisor.backends,
        GatewayConfig(api_key=api_key, allowed_media_domains=profile.allowed_media_domains),
        translation=engine,
        translation_id=translation.name if translation else defaults.TRANSLATION_MODEL_ID,
    )
    _attach_watchdog(app, supervisor)
    auth = "API key required" if api_key else "no API key"
    base = f"http://{settings.host}:{settings.port}/v1"
    sys.stderr.write(f"babelcap serve: ready on {base} ({auth})\n")
    try:
        # No access log (request lines can carry secrets; the gateway keeps metrics instead), no
        # Server header, no proxy-header parsing: each saves per-request work on the hot path.
        # Idle client connections stay open longer than clients keep them (httpx, and so the
        # OpenAI SDK, drops them after 5 s), so a client never reuses one being closed.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=defaults.BACKEND_KEEP_ALIVE_S,
        )
    finally:
        supervisor.stop()
    return 0


def _with_local_models(profile: Profile) -> Profile:
    """The profile with every vision model's reference replaced by its local folder (a hub id
    by its snapshot in the Hugging Face cache), and vLLM told to stay offline in that cache."""
    from babelcap.server import hub

    models = []
    for served in profile.models:
        backend = served.backend
        folder = hub.resolve(str(backend.model), profile=profile.name).path
        env = {**hub.hub_env(), **backend.env}
        models.append(
            served.model_copy(
                update={"backend": backend.model_copy(update={"model": folder, "env": env})}
            )
        )
    return profile.model_copy(update={"models": models})


def _translator_folder(translation: TranslationBackend) -> Path:
    """The CTranslate2 folder: the profile's own, or NLLB from the hub converted once."""
    from babelcap.server import hub

    # A CTranslate2 folder is used as it is; a Hugging Face NLLB folder or a cached hub id is
    # converted once into babelcap's cache (and reused after).
    return hub.nllb_ct2_folder(str(translation.model), translation.compute_type)


def _warm_translator(translation: TranslationBackend) -> TranslationEngine:
    """Load the translator and translate one sentence, so a missing CUDA library or a broken
    model fails here, clearly, and not on a user's first request."""
    from babelcap.server.translation import TranslationEngine

    folder = _translator_folder(translation)
    where = f"{translation.name} ({folder}, {translation.device}, {translation.compute_type})"
    sys.stderr.write(f"  text  {where}: CTranslate2, in the gateway; warming up\n")

    async def warm_up(engine: TranslationEngine) -> None:
        try:
            target = _WARM_UP_TARGET
            if target not in engine.languages.codes:
                target = next(c for c in engine.languages.codes if c != "eng_Latn")
            await engine.translate([_WARM_UP_TEXT], [target])
        finally:
            await engine.aclose()  # its batching task belongs to this event loop

    try:
        engine = TranslationEngine(translation.engine_settings(folder))
        asyncio.run(warm_up(engine))
    except (TranslationError, RuntimeError, OSError, ValueError) as error:
        hint = (
            ": CTranslate2's CUDA build needs libcublas.so.12; pip install nvidia-cublas-cu12 "
            "(babelcap preloads it) or install the CUDA 12 runtime"
            if "cublas" in str(error).lower()
            else ""
        )
        raise BackendStartError(
            f"the translator {where} failed its warm-up translation: {error}{hint}"
        ) from error
    return engine


def _attach_watchdog(app: FastAPI, supervisor: Supervisor) -> None:
    restarts = app.state.metrics.restarts
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(
            supervisor.watch(on_restart=lambda name: restarts.labels(name).inc())
        )
        async with previous(application):
            yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.lifespan_context = lifespan
