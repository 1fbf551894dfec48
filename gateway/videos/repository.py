from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import table_of
from gateway.videos.models import UNFINISHED, Job

# Writes here change rows, never loaded objects: they go through Core, without the ORM's
# per-statement bookkeeping (jobs are handed around as detached copies).
JOBS = table_of(Job)
# Built once (a statement object remembers its cache key); SET takes the parameters' columns.
INSERT = insert(JOBS)
UPDATE_SUBMITTING = update(JOBS).where(JOBS.c.id == bindparam("job"),
                                       JOBS.c.status == "submitting")
UPDATE_UNFINISHED = update(JOBS).where(JOBS.c.id == bindparam("job"),
                                       JOBS.c.status.in_(UNFINISHED))
FORGET_KEY = update(JOBS).where(JOBS.c.id == bindparam("job")).values(idempotency_key=None)
LEASE = update(JOBS).where(
    JOBS.c.id == bindparam("job"), JOBS.c.status.in_(UNFINISHED),
    or_(JOBS.c.lease_until.is_(None), JOBS.c.lease_until < bindparam("at")),
).values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
RELEASE = update(JOBS).where(JOBS.c.id == bindparam("job"),
                             JOBS.c.lease_owner == bindparam("owner")).values(
    polled_at=bindparam("at"), lease_owner=None, lease_until=None)
READ = select(JOBS).where(JOBS.c.id == bindparam("job"))
STARTED_SINCE = select(func.count(), func.min(JOBS.c.created_at)).where(
    JOBS.c.token_id == bindparam("token"), JOBS.c.created_at > bindparam("since"))


# -- in transactions that move money (plain statements on a synchronous connection, db.transact)
def insert_job(conn: Connection, job: Job) -> None:
    """Write a new job's row (``job`` stays a plain detached object)."""
    values = {column.key: getattr(job, column.key) for column in JOBS.columns}
    conn.execute(INSERT, {key: value for key, value in values.items() if value is not None})


def started_since(conn: Connection, token_id: str, since: float) -> tuple[int, float | None]:
    """How many jobs the token started since ``since``, and when the oldest of them began."""
    count, oldest = conn.execute(STARTED_SINCE, {"token": token_id, "since": since}).one()
    return int(count), oldest


def update_submitting(conn: Connection, job_id: str, values: dict[str, Any]) -> bool:
    """Write a job the upstream has not answered for yet; False if it is no longer so."""
    return conn.execute(UPDATE_SUBMITTING, {"job": job_id, **values}).rowcount == 1


def forget_idempotency_key(conn: Connection, job_id: str) -> None:
    """Let the job's Idempotency-Key name another request."""
    conn.execute(FORGET_KEY, {"job": job_id})


def lease(conn: Connection, job_id: str, owner: str, at: float,
          until: float) -> tuple[bool, Job | None]:
    """Take the right to poll this job (only one process holds it until it expires), and read
    it: whether the lease is ours, and the job as it stands (a detached copy)."""
    leased = conn.execute(LEASE, {"job": job_id, "at": at, "owner": owner,
                                  "until": until}).rowcount == 1
    row = conn.execute(READ, {"job": job_id}).first()
    if row is None:
        return leased, None
    return leased, Job(**{column.key: row._mapping[column] for column in JOBS.columns})


def release(conn: Connection, job_id: str, owner: str, at: float) -> None:
    """Record a poll that learned nothing and give up the lease, if it is still ours."""
    conn.execute(RELEASE, {"job": job_id, "owner": owner, "at": at})


def update_unfinished(conn: Connection, job_id: str, values: dict[str, Any]) -> bool:
    """Write a job that has not ended; False if it has (someone else ended it first)."""
    return conn.execute(UPDATE_UNFINISHED, {"job": job_id, **values}).rowcount == 1


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: str) -> Job | None:
        result = await self.session.execute(select(Job).where(Job.id == job_id))
        return result.scalar_one_or_none()

    async def get_owned(self, job_id: str, token_id: str) -> Job | None:
        result = await self.session.execute(
            select(Job).where(Job.id == job_id, Job.token_id == token_id,
                              Job.deleted_at.is_(None))
        )
        return result.scalar_one_or_none()

    async def by_idempotency_key(self, token_id: str, key: str) -> Job | None:
        result = await self.session.execute(
            select(Job).where(Job.token_id == token_id, Job.idempotency_key == key)
        )
        return result.scalar_one_or_none()

    async def forget_idempotency_key(self, job_id: str) -> None:
        await self.session.execute(update(Job).where(Job.id == job_id)
                                   .values(idempotency_key=None))

    async def page(self, token_id: str, *, after_seq: int | None, limit: int,
                   descending: bool) -> Sequence[Job]:
        query = select(Job).where(Job.token_id == token_id, Job.deleted_at.is_(None))
        if after_seq is not None:
            query = query.where(Job.seq < after_seq if descending else Job.seq > after_seq)
        query = query.order_by(Job.seq.desc() if descending else Job.seq.asc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def update(self, job_id: str, *conditions: Any, **values: Any) -> bool:
        result = await self.session.execute(
            update(JOBS).where(Job.id == job_id, *conditions).values(**values)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def mark_polled(self, ids: Sequence[str], owner: str, at: float) -> None:
        """Record a poll that learned nothing new, for many jobs at once, and free them."""
        await self.session.execute(
            update(JOBS).where(Job.id.in_(ids), Job.lease_owner == owner)
            .values(polled_at=at, lease_owner=None, lease_until=None)
        )

    async def record_progress(self, rows: Sequence[dict[str, Any]], at: float) -> None:
        """Record polls that moved jobs along without ending them, in one statement.

        Each row is ``{"job_id", "status", "progress", "content_url"}``; a None content_url
        keeps the one already known. Jobs that ended meanwhile are left alone.
        """
        jobs = JOBS.c
        await self.session.execute(
            update(JOBS)
            # Equalities, not IN: an executemany cannot expand a list parameter.
            .where(jobs.id == bindparam("job_id"),
                   or_(*(jobs.status == status for status in UNFINISHED)))
            .values(status=bindparam("status"), progress=bindparam("progress"),
                    content_url=func.coalesce(bindparam("content_url"), jobs.content_url),
                    polled_at=at, updated_at=at, lease_owner=None, lease_until=None),
            rows,
        )

    async def due(self, *, polled_before: float, at: float, limit: int) -> Sequence[str]:
        """Unfinished jobs not polled lately and not leased by a live process."""
        result = await self.session.execute(
            select(Job.id)
            .where(
                Job.status.in_(UNFINISHED),
                Job.polled_at < polled_before,
                or_(Job.lease_until.is_(None), Job.lease_until < at),
            )
            .order_by(Job.polled_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def claim_batch(self, ids: Sequence[str], owner: str, at: float,
                          until: float) -> Sequence[Job]:
        """Lease every listed job nobody else holds, in one statement, and return those won."""
        if not ids:
            return []
        await self.session.execute(
            update(JOBS)
            .where(Job.id.in_(ids), Job.status.in_(UNFINISHED),
                   or_(Job.lease_until.is_(None), Job.lease_until < at))
            .values(lease_owner=owner, lease_until=until)
        )
        result = await self.session.execute(
            select(Job).where(and_(Job.id.in_(ids), Job.lease_owner == owner,
                                   Job.lease_until == until))
        )
        return result.scalars().all()


async def admin_page(session: AsyncSession, *, token_id: str | None, statuses: Sequence[str],
                     after_seq: int | None, limit: int,
                     archive_state: str | None = None) -> Sequence[Job]:
    query = select(Job)
    if token_id:
        query = query.where(Job.token_id == token_id)
    if archive_state:
        query = query.where(Job.archive_state == archive_state)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if after_seq is not None:
        query = query.where(Job.seq < after_seq)
    return (await session.execute(query.order_by(Job.seq.desc()).limit(limit))).scalars().all()


async def seq_of(session: AsyncSession, job_id: str) -> int | None:
    result = await session.execute(select(Job.seq).where(Job.id == job_id))
    return result.scalar_one_or_none()
