"""Writing a job's event into the outbox, inside the transaction that ended the job.

The row commits with the job's new status and its settlement or not at all: no job that
ended misses its event, and no event tells of a job that did not end. Sending is the
delivery worker's, after the commit; nothing here waits on a receiver.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, bindparam, insert, select

from gateway.db import now, table_of
from gateway.tokens.models import Token
from gateway.videos.models import Job
from gateway.webhooks.events import EventType, event_body, new_event_id
from gateway.webhooks.models import WebhookDelivery

EVENT_OF_STATUS: dict[object, EventType] = {"completed": "video.completed",
                                            "failed": "video.failed"}
_tokens = table_of(Token).c
WEBHOOK_URL = select(_tokens.webhook_url).where(_tokens.id == bindparam("token"))
INSERT = insert(table_of(WebhookDelivery))


def event_for(job: Job, values: Mapping[str, object]) -> EventType | None:
    """The event a write of ``values`` to an unfinished job makes, if any.

    A job its client deleted before it ended gets none: the deletion is the client's own
    act, and OpenAI sends no event for it either.
    """
    if job.deleted_at is not None or values.get("deleted_at") is not None:
        return None
    return EVENT_OF_STATUS.get(values.get("status"))


def job_ended(conn: Connection, job: Job, values: Mapping[str, object]) -> None:
    """Queue the job's event if this write ended it and its token has a webhook.

    Runs in the caller's transaction (see ``db.transact``), which may run it twice: a fresh
    event id each time, the first attempt having been rolled back.
    """
    event_type = event_for(job, values)
    if event_type is None:
        return
    if conn.execute(WEBHOOK_URL, {"token": job.token_id}).scalar() is None:
        return
    at, event_id = now(), new_event_id()
    conn.execute(INSERT, {
        "id": event_id, "token_id": job.token_id, "job_id": job.id, "type": event_type,
        "body": event_body(event_id, event_type, job.id, int(at)), "status": "pending",
        "attempts": 0, "created_at": at, "next_attempt_at": at,
    })
