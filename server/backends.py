"""What the gateway and the supervisor share about each vLLM backend: its id, URL and state."""

from __future__ import annotations

__all__ = ["Backend"]


class Backend:
    """What the gateway knows of one vLLM backend: its model id, base URL and state."""

    def __init__(
        self, name: str, role: str, base_url: str, media: dict[str, int] | None = None
    ) -> None:
        self.name = name
        self.role = role
        self.media = media or {}
        self.base_url = base_url.rstrip("/")
        self.state = "starting"  # starting | ready | restarting | failed
