"""How late the event loop runs: a ticker that sleeps a fixed interval and records how much
longer than that each sleep took (``metrics.loop_lag_interval_s``, off unless set).

Every request, stream and background task of a process shares its one event loop, so a
callback that holds it (a large JSON body, a GC pass, a synchronous call) delays all of them
by as much; the request histograms show it only spread over many routes. The ticker costs
one wakeup an interval.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.metrics import LOOP_LAG, LOOP_LAG_MAX


class LoopLagTicker:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - started - self.interval_s)
            LOOP_LAG.observe(lag)
            if lag > self.longest_s:
                self.longest_s = lag
                LOOP_LAG_MAX.set(lag)
