"""The archive's rows: the archive columns of jobs, and the assets kept of each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.archive.models import ArchivedAsset
from gateway.archive.storage import Stored
from gateway.db import table_of
from gateway.videos.models import Job

JOBS = table_of(Job)
ASSETS = table_of(ArchivedAsset)
PENDING, STORED, FAILED, EXPIRED = "pending", "stored", "failed", "expired"
STATES = (PENDING, STORED, FAILED, EXPIRED)


def _lease_free(at: float) -> Any:
    return or_(Job.archive_lease_until.is_(None), Job.archive_lease_until < at)


class ArchiveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_due(self, owner: str, at: float, until: float,
                        limit: int) -> Sequence[Job]:
        """Lease up to ``limit`` pending jobs due a try that no live process holds."""
        due = (await self.session.execute(
            select(Job.id)
            .where(Job.archive_state == PENDING, Job.deleted_at.is_(None),
                   or_(Job.archive_next_at.is_(None), Job.archive_next_at <= at),
                   _lease_free(at))
            .order_by(Job.archive_next_at).limit(limit))).scalars().all()
        if not due:
            return []
        # The guarded UPDATE decides: of two processes that saw the same jobs, one wins each.
        await self.session.execute(
            update(JOBS).where(Job.id.in_(due), Job.archive_state == PENDING, _lease_free(at))
            .values(archive_lease_owner=owner, archive_lease_until=until))
        result = await self.session.execute(
            select(Job).where(Job.id.in_(due), Job.archive_lease_owner == owner,
                              Job.archive_lease_until == until))
        return result.scalars().all()

    async def _held(self, job_id: str, owner: str, **values: Any) -> bool:
        result = await self.session.execute(
            update(JOBS).where(Job.id == job_id, Job.archive_lease_owner == owner,
                               Job.archive_state == PENDING).values(**values))
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def renew(self, job_id: str, owner: str, until: float) -> bool:
        return await self._held(job_id, owner, archive_lease_until=until)

    async def kept(self, job_id: str) -> dict[str, ArchivedAsset]:
        rows = await self.session.execute(
            select(ArchivedAsset).where(ArchivedAsset.job_id == job_id))
        return {row.variant: row for row in rows.scalars()}

    async def asset(self, job_id: str, variant: str) -> ArchivedAsset | None:
        return await self.session.get(ArchivedAsset, (job_id, variant))

    async def record_asset(self, job_id: str, variant: str, stored: Stored,
                           content_type: str, at: float) -> None:
        await self.forget(job_id, variant)
        self.session.add(ArchivedAsset(job_id=job_id, variant=variant, key=stored.key,
                                       size=stored.size, sha256=stored.sha256,
                                       content_type=content_type, stored_at=at))

    async def forget(self, job_id: str, variant: str | None = None) -> None:
        query = delete(ASSETS).where(ASSETS.c.job_id == job_id)
        if variant is not None:
            query = query.where(ASSETS.c.variant == variant)
        await self.session.execute(query)

    async def mark_stored(self, job_id: str, owner: str, at: float,
                          retain_until: float | None) -> bool:
        """False when the lease was lost or the video deleted meanwhile."""
        result = await self.session.execute(
            update(JOBS).where(Job.id == job_id, Job.archive_lease_owner == owner,
                               Job.archive_state == PENDING, Job.deleted_at.is_(None))
            .values(archive_state=STORED, archived_at=at, retain_until=retain_until,
                    archive_attempts=Job.archive_attempts + 1, archive_next_at=None,
                    archive_lease_owner=None, archive_lease_until=None, updated_at=at))
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def mark_failed_try(self, job_id: str, owner: str, attempts: int,
                              retry_at: float | None, at: float) -> bool:
        """One more failed try: due again at ``retry_at``, or failed for good (None)."""
        values: dict[str, Any] = {"archive_attempts": attempts, "archive_next_at": retry_at,
                                  "archive_lease_owner": None, "archive_lease_until": None}
        if retry_at is None:
            values.update(archive_state=FAILED, updated_at=at)
        return await self._held(job_id, owner, **values)

    async def past_retention(self, at: float, limit: int) -> Sequence[str]:
        result = await self.session.execute(
            select(Job.id).where(Job.archive_state == STORED, Job.retain_until.is_not(None),
                                 Job.retain_until < at).limit(limit))
        return result.scalars().all()

    async def mark_expired(self, job_id: str, at: float) -> None:
        await self.session.execute(
            update(JOBS).where(Job.id == job_id, Job.archive_state == STORED)
            .values(archive_state=EXPIRED, updated_at=at))
