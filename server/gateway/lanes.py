"""One frame count at a time per video backend.

vLLM (0.9 and 0.10) batches the videos of the requests scheduled in one engine step into one
tensor; LLaVA-NeXT-Video's ``_process_video_pixels`` then ``torch.cat``s them, and two videos
with different frame counts kill the engine ("Sizes of tensors must match"), failing every
request in flight. A damaged clip's 2 readable frames next to another clip's 4 did it, and any
client could do it on purpose. Changing what the model sees (padding frames) would change its
answers, so the gateway changes the timing instead: requests whose videos have the frame count
of those in flight go straight on; one with another count waits until they have finished, and
requests that came after it wait behind it (first come, first served, so none starves).
Requests without video never wait.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["FrameLanes"]


class FrameLanes:
    """Admit requests to one backend so that all videos in flight have one frame count."""

    def __init__(self) -> None:
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()  # oldest first
        self._count = 0  # the frame count in flight (0: nothing in flight)
        self._running = 0

    @property
    def running(self) -> int:
        """Requests with video in flight."""
        return self._running

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn."""
        return sum(not future.done() for _, future in self._waiting)

    async def acquire(self, count: int) -> None:
        """Wait until a request whose videos have ``count`` frames may go to the backend (at
        once for 0, no video); pair with :meth:`release`. Cancelled while waiting (its client
        left), it gives up its place."""
        if count == 0:
            return
        entry = (count, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        self._wake()  # at once when its count is in flight and nobody waits ahead of it
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():  # admitted as it was cancelled
                self.release(count)
            else:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                self._wake()  # those behind it may go now
            raise

    def release(self, count: int) -> None:
        """The request that :meth:`acquire` admitted is done (synchronous: safe in a
        ``finally`` of a cancelled task)."""
        if count == 0:
            return
        self._running -= 1
        if self._running == 0:
            self._count = 0
        self._wake()

    def _enter(self, count: int) -> None:
        self._count = count
        self._running += 1

    def _wake(self) -> None:
        """Admit waiters in order while their count matches what is in flight."""
        while self._waiting:
            count, future = self._waiting[0]
            if future.done():  # its request was cancelled
                self._waiting.popleft()
                continue
            if self._running and self._count != count:
                return
            self._waiting.popleft()
            self._enter(count)
            future.set_result(None)
