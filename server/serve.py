"""``babelcap serve``: a profile's backends + the translator + the gateway, in one process tree.

Order: the preflight checks (``--check`` stops there), the models resolved to local folders,
the translator loaded and proven by one warm-up translation, the vLLM backends (one after
another on a GPU), then the gateway, which reports ready only once all of that has passed.

SIGINT, SIGTERM and SIGHUP all stop it the same way: the gateway shuts down, then every vLLM
process group is stopped (terminate, wait, kill). Should serve itself be SIGKILLed, its vLLM
API processes die with it (``PR_SET_PDEATHSIG``) and the supervisor's group keeper kills the
rest of their groups (the engine processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
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
    _stop_on_signals()
    supervisor = Supervisor(profile, settings.log_dir, host="127.0.0.1")
    if profile.starts_one_by_one() and len(profile.models) > 1:
        sys.stderr.write("babelcap serve: starting the backends one after another (one GPU)\n")
    try:
        _run(settings, profile, supervisor, engine, api_key)
    finally:
        # A second signal must not cut the stop short (the keeper would still clean up).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(sig, signal.SIG_IGN)
        supervisor.stop()
    return 0


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end serve as Ctrl-C does, through the ``finally`` that stops the
    backends. uvicorn catches SIGTERM while it runs, shuts down, then raises it again with the
    handler found before it: this one (the default would end the process on the spot, leaving
    every vLLM process running). uvicorn does not catch SIGHUP, so SIGHUP is turned into the
    SIGTERM it does catch; the exit status still names the signal received first."""
    if threading.current_thread() is not threading.main_thread():
        return
    received: list[int] = []

    def on_term(signum: int, _: object) -> None:
        raise SystemExit(128 + (received[0] if received else signum))

    def on_hup(signum: int, _: object) -> None:
        received.append(signum)
        signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_hup)


def _run(
    settings: ServeSettings,
    profile: Profile,
    supervisor: Supervisor,
    engine: TranslationEngine | None,
    api_key: str | None,
) -> None:
    """Start the backends, then serve the gateway until a signal ends it."""
    from babelcap.server.translation import LanguageDetector, TranslationLimits

    translation = profile.translation
    detector = None
    if engine is not None:  # loaded now, not on the first /detect or source "auto"
        detector = LanguageDetector(engine.languages)
        detector.load()
    supervisor.start()
    app = create_gateway(
        supervisor.backends,
        GatewayConfig.from_profile(
            profile,
            api_key=api_key,
            max_body_bytes=settings.max_body_bytes,
            max_translation_body_bytes=settings.max_translation_body_bytes,
            translation_limits=TranslationLimits(
                max_chars=settings.max_translation_chars,
                max_sentences=settings.max_translation_sentences,
            ),
        ),
        detector=detector,
        translation=engine,
        translation_id=translation.name if translation else defaults.TRANSLATION_MODEL_ID,
    )
    _attach_watchdog(app, supervisor)
    auth = "API key required" if api_key else "no API key"
    base = f"http://{settings.host}:{settings.port}/v1"
    sys.stderr.write(f"babelcap serve: ready on {base} ({auth})\n")
    from babelcap.server.http_server import run as run_http

    run_http(app, host=settings.host, port=settings.port)


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
