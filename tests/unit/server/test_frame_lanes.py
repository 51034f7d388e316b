"""Videos in flight to one backend have one frame count (vLLM's LLaVA-NeXT-Video engine dies on a
batch mixing counts: tests/integration/test_gateway_validation.py), first come, first served."""

from __future__ import annotations

import asyncio
from collections import Counter

from babelcap.server.gateway.lanes import FrameLanes


async def _turns(lanes: FrameLanes, counts: list[int], hold: float = 0.02) -> list[tuple[str, int]]:
    events: list[tuple[str, int]] = []
    in_flight: Counter[int] = Counter()

    async def request(i: int, count: int) -> None:
        await asyncio.sleep(i * 0.001)  # arrive in list order
        await lanes.acquire(count)
        in_flight[count] += 1
        assert len(+in_flight) == 1, in_flight  # never two frame counts at once
        events.append(("in", count))
        await asyncio.sleep(hold)
        in_flight[count] -= 1
        events.append(("out", count))
        lanes.release(count)

    await asyncio.gather(*(request(i, c) for i, c in enumerate(counts)))
    return events


def test_one_frame_count_in_flight_at_a_time_in_arrival_order():
    lanes = FrameLanes()
    events = asyncio.run(_turns(lanes, [4, 4, 2, 4, 2, 8]))
    entered = [c for kind, c in events if kind == "in"]
    # The first two 4s run together; the 2 waits for them; the 4 that came after the 2 waits
    # behind it (no starvation); the second 2 waits behind that 4.
    assert entered == [4, 4, 2, 4, 2, 8]
    assert lanes.running == 0 and lanes.waiting == 0


def test_same_counts_share_and_requests_without_video_never_wait():
    lanes = FrameLanes()

    async def go() -> None:
        await lanes.acquire(4)
        await asyncio.wait_for(lanes.acquire(4), 0.5)  # same count: in at once
        await asyncio.wait_for(lanes.acquire(0), 0.5)  # no video: in at once
        assert lanes.running == 2
        other = asyncio.ensure_future(lanes.acquire(2))
        await asyncio.sleep(0.05)
        assert not other.done() and lanes.waiting == 1
        lanes.release(4)
        await asyncio.sleep(0.01)
        assert not other.done()
        lanes.release(4)
        await asyncio.wait_for(other, 0.5)
        assert lanes.running == 1
        lanes.release(2)

    asyncio.run(go())


def test_a_waiter_that_leaves_gives_its_place_up():
    lanes = FrameLanes()

    async def go() -> None:
        await lanes.acquire(4)
        leaver = asyncio.ensure_future(lanes.acquire(2))
        behind = asyncio.ensure_future(lanes.acquire(4))
        await asyncio.sleep(0.02)
        assert not behind.done()  # queued behind the 2
        leaver.cancel()
        await asyncio.wait_for(behind, 0.5)  # the 2 left: the 4 joins the 4 in flight
        assert lanes.running == 2 and lanes.waiting == 0
        lanes.release(4)
        lanes.release(4)
        assert lanes.running == 0

    asyncio.run(go())
