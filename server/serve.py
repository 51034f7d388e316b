"""``babelcap serve``: a profile's backends + the translator + the gateway, in one process tree."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from babelcap.server.gateway import GatewayConfig, create_gateway
from babelcap.server.profiles import load_profile
from babelcap.server.supervisor import Supervisor, preflight
from babelcap.server.vllm_process import BACKEND_KEEP_ALIVE_S

__all__ = ["serve"]


def serve(
    *,
    profile_name: str | None,
    config: Path | None,
    host: str,
    port: int,
    api_key: str | None,
    log_dir: Path,
) -> int:
    """Run until interrupted; returns the exit code."""
    import uvicorn

    profile = load_profile(profile_name, config)
    preflight(profile)
    sys.stderr.write(f"babelcap serve: profile {profile.name} ({profile.description})\n")
    for served in profile.models:
        sys.stderr.write(f"  {served.role:5} {served.backend.name}: {served.backend.model}\n")
    engine = None
    if profile.translation is not None:
        from babelcap.server.translation import TranslationEngine, TranslationSettings

        t = profile.translation
        engine = TranslationEngine(
            TranslationSettings(model=t.model, device=t.device, compute_type=t.compute_type)
        )
        sys.stderr.write(f"  text  {t.name}: {t.model} (CTranslate2, in the gateway)\n")
    supervisor = Supervisor(profile, log_dir, host="127.0.0.1")
    supervisor.start()
    app = create_gateway(
        supervisor.backends,
        GatewayConfig(api_key=api_key, allowed_media_domains=profile.allowed_media_domains),
        translation=engine,
        translation_id=profile.translation.name if profile.translation else "nllb",
    )
    _attach_watchdog(app, supervisor)
    auth = "API key required" if api_key else "no API key"
    sys.stderr.write(f"babelcap serve: ready on http://{host}:{port}/v1 ({auth})\n")
    try:
        # No access log (request lines can carry secrets; the gateway keeps metrics instead), no
        # Server header, no proxy-header parsing: each saves per-request work on the hot path.
        # Idle client connections stay open longer than clients keep them (httpx, and so the
        # OpenAI SDK, drops them after 5 s), so a client never reuses one being closed.
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=BACKEND_KEEP_ALIVE_S,
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
