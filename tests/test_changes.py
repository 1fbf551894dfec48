"""JobChanges, the wait on a job's next change, over a store of plain rows: one refresh
however many wait, changes made elsewhere seen by re-reading, nothing left when all leave."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from gateway.cache import SingleFlight
from gateway.chat.config import ChatConfig
from gateway.config import ConfigError, load_settings
from gateway.jobs.changes import JobChanges
from gateway.videos.models import Job


@dataclass
class Rows:
    """What the database holds, read as a fresh Job each time (as a session would)."""

    status: str = "queued"
    progress: int = 0
    polled_at: float = 0.0
    refreshes: int = 0
    changes: JobChanges | None = None
    refresh_s: float = 0.05
    seen_by: list[str] = field(default_factory=list)

    async def load(self, job_id: str) -> Job | None:
        if job_id != "video_1":
            return None
        return Job(id=job_id, status=self.status, progress=self.progress,
                   polled_at=self.polled_at, deleted_at=None)

    async def refresh(self, job_id: str) -> bool:
        """The upstream says the job moved on; the tracker says so."""
        self.refreshes += 1
        await asyncio.sleep(self.refresh_s)
        self.status, self.progress, self.polled_at = "in_progress", self.progress + 10, time.time()
        assert self.changes is not None
        self.changes.notify(job_id)
        return True


def _changes(rows: Rows, *, refresh_after_s: float = 60.0, reread_s: float = 60.0) -> JobChanges:
    rows.changes = JobChanges(rows.load, rows.refresh, refresh_after_s=refresh_after_s,
                              reread_s=reread_s)
    return rows.changes


def _watch_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("watch ")]


class TestJobChanges:
    def test_waiters_on_one_job_share_one_refresh(self) -> None:
        async def scenario() -> None:
            rows = Rows()
            changes = _changes(rows)
            seen = await rows.load("video_1")
            got = await asyncio.gather(*(changes.next_change("video_1", 5, seen=seen)
                                         for _ in range(20)))
            assert {(job.status, job.progress) for job in got if job} == {("in_progress", 10)}
            assert rows.refreshes == 1
            await asyncio.sleep(0)
            assert changes.watched == 0
            assert _watch_tasks() == []

        asyncio.run(scenario())

    def test_a_fresh_job_is_not_refreshed_and_a_quiet_wait_times_out(self) -> None:
        async def scenario() -> None:
            rows = Rows(polled_at=time.time())
            changes = _changes(rows)
            seen = await rows.load("video_1")
            started = time.monotonic()
            job = await changes.next_change("video_1", 0.2, seen=seen)
            assert 0.2 <= time.monotonic() - started < 1
            assert job is not None
            assert (job.status, rows.refreshes) == ("queued", 0)

        asyncio.run(scenario())

    def test_a_change_made_by_another_process_is_seen_by_rereading(self) -> None:
        async def scenario() -> None:
            rows = Rows(polled_at=time.time())
            changes = _changes(rows, reread_s=0.05)
            seen = await rows.load("video_1")

            async def elsewhere() -> None:  # no notify: another process wrote it
                await asyncio.sleep(0.1)
                rows.status, rows.progress = "completed", 100

            _, job = await asyncio.gather(elsewhere(),
                                          changes.next_change("video_1", 5, seen=seen))
            assert job is not None
            assert job.status == "completed"
            assert rows.refreshes == 0

        asyncio.run(scenario())

    def test_waiters_that_go_away_leave_nothing_behind(self) -> None:
        async def scenario() -> None:
            rows = Rows(refresh_s=0.3)
            # Shielded and shared as the tracker's refresh is.
            flight: SingleFlight[bool] = SingleFlight()
            changes = rows.changes = JobChanges(
                rows.load, lambda job_id: flight.run(job_id, lambda: rows.refresh(job_id)),
                refresh_after_s=0.1, reread_s=0.05)
            seen = await rows.load("video_1")
            waiters = [asyncio.create_task(changes.next_change("video_1", 30, seen=seen))
                       for _ in range(5)]
            await asyncio.sleep(0.05)  # the refresh is under way
            assert changes.watched == 1
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            await asyncio.sleep(0)
            assert changes.watched == 0
            assert _watch_tasks() == []
            await asyncio.sleep(0.35)  # the refresh itself was not abandoned
            assert (rows.status, rows.refreshes) == ("in_progress", 1)

        asyncio.run(scenario())

    def test_an_ended_or_missing_job_is_answered_at_once(self) -> None:
        async def scenario() -> None:
            rows = Rows(status="failed")
            changes = _changes(rows)
            job = await changes.next_change("video_1", 5)
            assert job is not None
            assert job.status == "failed"
            assert await changes.next_change("video_2", 5) is None
            assert rows.refreshes == 0
            await asyncio.sleep(0)
            assert _watch_tasks() == []

        asyncio.run(scenario())


class TestChatConfig:
    def test_defaults(self) -> None:
        config = ChatConfig()
        assert (config.aliases, config.keepalive_s) == ({}, 15.0)

    @pytest.mark.parametrize(("alias", "key"), [
        ({"model": "sora-9", "size": "720x1280", "seconds": 4}, "chat.aliases.clip.model"),
        ({"model": "sora-2", "size": "1024x1792", "seconds": 4}, "chat.aliases.clip.size"),
        ({"model": "sora-2", "size": "720x1280", "seconds": 15}, "chat.aliases.clip.seconds"),
    ])
    def test_an_alias_must_name_a_priced_job(self, alias: dict[str, object],
                                             key: str) -> None:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_settings(None, pricing={"per_second": {"sora-2": {"720x1280": "0.1"}}},
                          chat={"aliases": {"clip": alias}})

    def test_an_alias_may_not_hide_a_model(self) -> None:
        with pytest.raises(ConfigError, match="may not share a model's name"):
            load_settings(None, pricing={"per_call": {"sora-2": "0.1"}},
                          chat={"aliases": {"sora-2": {"model": "sora-2", "size": "720p",
                                                       "seconds": 4}}})
