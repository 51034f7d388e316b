"""What the gateway and the supervisor share about each vLLM backend: its id, URL and state."""

from __future__ import annotations

from typing import Any

__all__ = ["Backend"]


class Backend:
    """What the gateway knows of one vLLM backend: its model id, base URL and state.

    ``state`` is ``starting``, ``ready``, ``restarting`` (down for now: the gateway answers 503
    with Retry-After) or ``failed`` (out of restarts: 503 with no retry promise).
    """

    def __init__(
        self, name: str, role: str, base_url: str, media: dict[str, int] | None = None
    ) -> None:
        self.name = name
        self.role = role
        self.media = media or {}
        self.base_url = base_url.rstrip("/")
        self.state = "starting"  # starting | ready | restarting | failed
        self.restarts = 0  # restarts since the budget was last reset
        self.max_restarts = 0
        self.last_error: str | None = None

    def report(self) -> dict[str, Any]:
        """The backend as ``/health`` explains it: state, restarts used, the last error."""
        return {
            "state": self.state,
            "restarts": self.restarts,
            "max_restarts": self.max_restarts,
            "last_error": self.last_error,
        }
