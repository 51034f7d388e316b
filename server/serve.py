"""``babelcap serve``: a profile's backends + the translator + the gateway, in one process tree."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI

from babelcap.core import defaults
from babelcap.server.gateway import GatewayConfig, create_gateway
from babelcap.server.profiles import load_profile
from babelcap.server.settings import ServeSettings
from babelcap.server.supervisor import Supervisor, preflight

__all__ = ["serve"]


def serve(settings: ServeSettings) -> int:
    """Run until interrupted; returns the exit code."""
    import uvicorn

    profile = load_profile(settings.profile, settings.config)
    preflight(profile)
    sys.stderr.write(f"babelcap serve: profile {profile.name} ({profile.description})\n")
    for served in profile.models:
        sys.stderr.write(f"  {served.role:5} {served.backend.name}: {served.backend.model}\n")
    engine = None
    translation = profile.translation
    if translation is not None:
        from babelcap.server.translation import TranslationEngine

        engine = TranslationEngine(translation.engine_settings())
        sys.stderr.write(
            f"  text  {translation.name}: {translation.model} (CTranslate2, in the gateway)\n"
        )
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    supervisor = Supervisor(profile, settings.log_dir, host="127.0.0.1")
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
