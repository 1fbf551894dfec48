"""Video jobs as a client sees them: submit, retrieve, list, delete, remix, content."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from gateway.db import now, transact
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    NoUpstream,
    PermissionDenied,
    RateLimited,
    UpstreamOutcomeUnknown,
    UpstreamRejected,
    VideoNotReady,
)
from gateway.jobs.tracker import DELETED
from gateway.ledger import service as ledger
from gateway.ledger.pricing import price_micros
from gateway.metrics import HOLDS, record_settlement
from gateway.tokens.crypto import is_id, new_id
from gateway.tokens.models import Token
from gateway.upstreams.base import DeriveRequest
from gateway.upstreams.flavor import (
    EDIT,
    EXTEND,
    PRICED_FIELDS,
    REMIX,
    Flavor,
    Submitted,
)
from gateway.upstreams.outcome import Running
from gateway.upstreams.pool import Placement
from gateway.videos import idempotency as idem
from gateway.videos import repository as job_rows
from gateway.videos.deps import VideoDeps
from gateway.videos.idempotency import Idempotency
from gateway.videos.inputs import CreateParams, offered_seconds
from gateway.videos.media import billed_seconds
from gateway.videos.models import UNFINISHED, Job, replace_job
from gateway.videos.repository import JobRepository
from gateway.videos.requests import derivations, needs_of, unsupported, vendor_request
from gateway.videos.schemas import Video, public_status
from gateway.videos.sources import DeriveParams

log = logging.getLogger("gateway.videos")

RATE_WINDOW_S = 60.0
MAX_PAGE = 100

Submit = Callable[[], Awaitable[tuple[Placement, Submitted]]]


class VideoService:
    def __init__(self, ctx: VideoDeps, token: Token) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.token = token

    # -- create and remix --------------------------------------------------------------------
    async def create(self, params: CreateParams, idempotency_key: str | None) -> Job:
        """Hold the price of a parsed create, persist the job and hand it to an upstream.

        The one way a job is started from a prompt: the create route and the chat facade
        both come through here.
        """
        self._authorize(params.model)
        request = vendor_request(params)
        needs = needs_of(request)
        self._servable(params.model, needs)
        self._vet_metadata(params.model, request.metadata)
        price = self._price(params.model, params.size, params.seconds, audio=request.audio)
        job = self._new_job(params.model, params.size, params.seconds, params.prompt, price,
                            idempotency=idem.for_create(idempotency_key, params),
                            audio=request.audio)

        def submit() -> Awaitable[tuple[Placement, Submitted]]:
            return self.ctx.pool.submit(
                self.token.group, params.model,
                lambda flavor, placement: flavor.create(
                    replace(request, model=placement.upstream.upstream_model(params.model)),
                    placement.key,
                ),
                needs,
            )

        return await self._start(job, submit)

    async def remix(self, video_id: str, prompt: str, idempotency_key: str | None) -> Job:
        source = await self._owned(video_id)
        if source.status != "completed" or source.upstream is None or not source.upstream_id:
            raise InvalidRequest("Only a completed video can be remixed.", param="video_id")
        self._authorize(source.model)
        price = self._price(source.model, source.size, source.seconds)
        job = self._new_job(source.model, source.size, source.seconds, prompt, price,
                            idempotency=idem.for_remix(idempotency_key, source.id, prompt),
                            kind="remix", remixed_from=source.id)
        upstream, upstream_id = source.upstream, source.upstream_id
        self._source_can(source, REMIX, "remixed")

        def remix(flavor: Flavor, placement: Placement) -> Awaitable[Submitted]:
            return derivations(flavor).remix(upstream_id, prompt, placement.key)

        def submit() -> Awaitable[tuple[Placement, Submitted]]:
            return self.ctx.pool.at(upstream, source.upstream_key_index, remix)

        return await self._start(job, submit)

    async def derive(self, params: DeriveParams, idempotency_key: str | None) -> Job:
        """An edit or extension of one of the caller's videos, or of an uploaded video."""
        kind, upload = params.kind, params.upload
        source = await self._owned(params.source_id, param="video") if params.source_id \
            else None
        if source is not None and (source.status != "completed" or not source.upstream_id):
            raise InvalidRequest("Only a completed video can be edited or extended.",
                                 param="video")
        model = source.model if source else params.model
        size = source.size if source else params.size
        # An upload's model and size were parsed with it.
        assert model is not None
        assert size is not None
        seconds = self._derived_seconds(params, model, source)
        self._authorize(model)
        price = self._price(model, size, seconds)
        needs = frozenset({EDIT if kind == "edits" else EXTEND})
        if source is None:
            self._servable(model, needs)
        else:
            self._source_can(source, next(iter(needs)),
                             "edited" if kind == "edits" else "extended")
        idempotency = await idem.for_derive(
            idempotency_key, kind, source_id=source.id if source else None, upload=upload,
            model=model, size=size, seconds=seconds, prompt=params.prompt)
        job = self._new_job(model, size, seconds, params.prompt, price, kind=kind.rstrip("s"),
                            idempotency=idempotency)
        request = DeriveRequest(kind=kind, prompt=params.prompt,
                                seconds=seconds if kind == "extensions" else None,
                                source_id=source.upstream_id if source else None,
                                upload=upload, model=None if source else model,
                                size=None if source else size)

        def call(flavor: Flavor, placement: Placement) -> Awaitable[Submitted]:
            upstream_model = placement.upstream.upstream_model(model)
            return derivations(flavor).derive(
                replace(request, model=request.model and upstream_model), placement.key)

        def submit() -> Awaitable[tuple[Placement, Submitted]]:
            if source is not None and source.upstream is not None:
                return self.ctx.pool.at(source.upstream, source.upstream_key_index, call)
            return self.ctx.pool.submit(self.token.group, model, call, needs)

        return await self._start(job, submit)

    def _derived_seconds(self, params: DeriveParams, model: str, source: Job | None) -> int:
        """An extension is billed by the seconds it adds; an edit by its source's length.

        An edit has no length of its own, so a ``seconds`` sent with it is not read: an
        uploaded video is billed as the shortest offered length it fits in.
        """
        if params.kind == "extensions":
            return offered_seconds(self.settings, model, params.seconds)
        if source is not None:
            return source.seconds
        assert params.upload is not None
        return billed_seconds(params.upload.duration_s, self.settings.seconds_for(model),
                              model=model)

    def _servable(self, model: str, needs: frozenset[str]) -> None:
        """Refuse, before any hold, what no upstream of the token's group can do."""
        pool, group = self.ctx.pool, self.token.group
        if not pool.serves(group, model):
            raise NoUpstream(f"No upstream serves model '{model}' for this token.")
        if not pool.serves(group, model, needs):
            raise unsupported(model, needs)

    def _vet_metadata(self, model: str, metadata: Mapping[str, object]) -> None:
        """Refuse metadata that would set what the price depends on, before any hold: no
        client may make a job cost more upstream than it was charged."""
        priced = set(PRICED_FIELDS)
        for upstream in self.ctx.pool.eligible(self.token.group, model):
            priced |= self.ctx.pool.flavor(upstream.name).priced_fields
        named = sorted(key for key in metadata if key.lower() in priced)
        if named:
            raise InvalidRequest(
                f"'metadata' may not set {', '.join(repr(k) for k in named)}: the price depends "
                "on it; use the request's own model, size and seconds.", param="metadata")

    def _source_can(self, source: Job, capability: str, done: str) -> None:
        assert source.upstream is not None
        if capability not in self.ctx.pool.flavor(source.upstream).capabilities:
            raise InvalidRequest(f"Videos of model '{source.model}' cannot be {done}.",
                                 param="video_id" if capability == REMIX else "video")

    def _authorize(self, model: str) -> None:
        group = self.settings.groups.get(self.token.group)
        if group is None:
            raise PermissionDenied(f"The token's group '{self.token.group}' is not offered.")
        if self.token.billing_mode not in group.billing_modes:
            raise PermissionDenied(
                f"Group '{self.token.group}' does not support {self.token.billing_mode} billing.",
                code="billing_mode_not_allowed",
            )
        allowed = (self.token.models or None, group.models)
        if any(models is not None and model not in models for models in allowed):
            raise PermissionDenied(f"This token may not use model '{model}'.", param="model")

    def _price(self, model: str, size: str, seconds: int, *, audio: bool = False) -> int:
        return price_micros(self.settings, group=self.token.group,
                            billing_mode=self.token.billing_mode, model=model, size=size,
                            seconds=seconds, audio=audio)

    def _new_job(self, model: str, size: str, seconds: int, prompt: str, price: int, *,
                 idempotency: Idempotency | None, kind: str = "create",
                 remixed_from: str | None = None, audio: bool = False) -> Job:
        at = now()
        return Job(
            id=new_id("video"), token_id=self.token.id, group=self.token.group,
            billing_mode=self.token.billing_mode, kind=kind, model=model, size=size,
            audio=audio or None,
            seconds=seconds, prompt=prompt, remixed_from_video_id=remixed_from,
            price_micros=price, status="submitting", progress=0,
            idempotency_key=idempotency.key if idempotency else None,
            idempotency_fingerprint=idempotency.fingerprint if idempotency else None,
            created_at=at, updated_at=at, polled_at=at,
            # This process is submitting the job: nobody else may poll or end it meanwhile.
            lease_owner=self.ctx.instance_id, lease_until=at + self.ctx.tracker.submit_grace_s,
        )

    async def _start(self, job: Job, submit: Submit) -> Job:
        """Hold the money and persist the job, then (outside any transaction) submit it."""
        if (earlier := await self._repeat(job)) is not None:
            return earlier
        token_id, rpm = self.token.id, self.token.rpm

        def hold_and_record(conn: Connection) -> None:
            ledger.hold(conn, token_id, job.id, job.price_micros)
            if rpm is not None:
                # The hold's UPDATE locks the token's row until commit, so this count sees
                # every concurrent create of the token, in this process or any other.
                _check_rate(conn, token_id, rpm)
            job_rows.insert_job(conn, job)

        try:
            await transact(self.ctx.engine, hold_and_record)
            HOLDS.inc()
        except IntegrityError:
            if job.idempotency_key is None:
                raise
            # A concurrent request with the same Idempotency-Key won the race; if its key is
            # free again already (it started no upstream job), a retry may take it.
            earlier = await self._repeat(job)
            if earlier is None:
                raise idem.in_use() from None
            return earlier
        try:
            placement, result = await submit()
        except GatewayError as exc:
            # Only an upstream that may have started a job keeps the key bound to this one.
            await self._abandon(job, exc, keep_key=isinstance(exc, UpstreamOutcomeUnknown))
            raise
        except Exception:
            # A fault of ours before any upstream answer: give the money back at once. The
            # call may have reached an upstream, so the key stays with this job.
            await self._abandon(job, GatewayError("The job could not be submitted.",
                                                  code="internal_error"), keep_key=True)
            raise
        return await self._placed(job, placement, result)

    async def _repeat(self, job: Job) -> Job | None:
        """The first job of this job's Idempotency-Key, or None if the key is free."""
        if job.idempotency_key is None or job.idempotency_fingerprint is None:
            return None
        return await idem.earlier_job(
            self.ctx.sessions, self.token.id,
            Idempotency(job.idempotency_key, job.idempotency_fingerprint))

    async def _abandon(self, job: Job, exc: GatewayError, *, keep_key: bool) -> None:
        """The upstream never took the job: release the hold and keep the job out of sight."""
        at = now()
        values = {"status": "failed", "error_code": exc.code, "error_message": exc.message,
                  "completed_at": at, "updated_at": at, "deleted_at": at,
                  "upstream_error": exc.upstream_error if isinstance(exc, UpstreamRejected)
                  else None}

        def release(conn: Connection) -> bool:
            job_rows.update_submitting(conn, job.id, values)
            if not keep_key:
                job_rows.forget_idempotency_key(conn, job.id)
            return ledger.settle(conn, job, "release", note=exc.code)

        if await transact(self.ctx.engine, release):
            record_settlement("release", job.price_micros)

    async def _placed(self, job: Job, placement: Placement, submitted: Submitted) -> Job:
        at = now()
        outcome = submitted.outcome or Running("queued")
        status = outcome.status if isinstance(outcome, Running) else "in_progress"
        values: dict[str, Any] = {
            "upstream": placement.upstream.name, "upstream_key_index": placement.key_index,
            "upstream_id": submitted.upstream_id,
            "upstream_model": placement.upstream.upstream_model(job.model),
            "poll_state": dict(submitted.poll_state) or None,
            "status": status, "progress": outcome.progress if isinstance(outcome, Running) else 0,
            "updated_at": at, "polled_at": at, "lease_owner": None, "lease_until": None,
        }
        recorded = await transact(self.ctx.engine,
                                  lambda conn: job_rows.update_submitting(conn, job.id, values))
        self.ctx.videos.drop(job.id)
        if not recorded:
            # Deleted or expired while the create was in flight: don't leave it running.
            await self.ctx.tracker.cancel_upstream(replace_job(job, **values))
            return await self._stored(job.id)
        placed = replace_job(job, **values)
        if not isinstance(outcome, Running):
            await self.ctx.tracker.apply(placed, outcome)
            return await self._stored(job.id)
        return placed

    async def _stored(self, job_id: str) -> Job:
        async with self.ctx.sessions() as session:
            job = await JobRepository(session).get(job_id)
        assert job is not None
        return job

    # -- reading -----------------------------------------------------------------------------
    async def _owned(self, video_id: str, *, param: str = "video_id") -> Job:
        if not is_id(video_id, "video"):  # not one of ours: no need to ask the database
            raise NotFound(f"No video found with id '{video_id[:80]!r}'.", param=param)
        async with self.ctx.sessions() as session:
            job = await JobRepository(session).get_owned(video_id, self.token.id)
        if job is None:
            raise NotFound(f"No video found with id '{video_id}'.", param=param)
        return job

    async def retrieve_json(self, video_id: str) -> bytes:
        """The Video as JSON: the hot path of every poll, answered from memory when it can be."""
        owner, body = await self.ctx.videos.get_or_load(
            video_id, lambda: self._render(video_id), flight=(self.token.id, video_id))
        if owner != self.token.id:  # cached for its owner; anyone else gets the ownership check
            (owner, body), _ = await self._render(video_id)
        return body

    async def _render(self, video_id: str) -> tuple[tuple[str, bytes], float | None]:
        job = await self.retrieve(video_id)
        body = Video.json_of(job)
        within = None
        if job.status in UNFINISHED:  # never past the moment the job is due a refresh
            within = job.polled_at + self.settings.jobs.refresh_after_s - now()
        return (self.token.id, body), within

    async def retrieve(self, video_id: str) -> Job:
        job = await self._owned(video_id)
        if job.status in UNFINISHED and now() - job.polled_at >= self.settings.jobs.refresh_after_s:
            await self.ctx.tracker.refresh(job.id)
            job = await self._owned(video_id)
        return job

    async def completed(self, video_id: str) -> Job:
        job = await self.retrieve(video_id)
        if job.status != "completed":
            raise VideoNotReady(f"Video '{video_id}' is {public_status(job.status)}; content "
                                "is available once it has completed.")
        return job

    async def page(self, *, after: str | None, limit: int, order: str) -> tuple[list[Job], bool]:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"'limit' must be between 1 and {MAX_PAGE}.", param="limit")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
        after_seq = (await self._owned(after, param="after")).seq if after else None
        async with self.ctx.sessions() as session:
            jobs = await JobRepository(session).page(self.token.id, after_seq=after_seq,
                                                     limit=limit + 1,
                                                     descending=order == "desc")
        return list(jobs[:limit]), len(jobs) > limit

    # -- delete ------------------------------------------------------------------------------
    async def delete(self, video_id: str) -> None:
        job = await self._owned(video_id)
        self.ctx.videos.drop(job.id)
        cancel = True
        if job.status in UNFINISHED:
            job, cancel = await self._settle_for_delete(job)
        async with self.ctx.sessions() as session, session.begin():
            await JobRepository(session).update(job.id, Job.deleted_at.is_(None),
                                                deleted_at=now())
        await self.ctx.archive.remove(job.id)
        if cancel:
            await self.ctx.tracker.cancel_upstream(job)

    async def _settle_for_delete(self, job: Job) -> tuple[Job, bool]:
        """Settle an unfinished job on its upstream's word before it is deleted.

        The upstream may have finished it since the last poll: completed is captured (the
        upstream bills the operator for it), failed is refunded, still running is refunded
        (and cancelled upstream). A job still being submitted has nobody to ask yet: it is
        refunded, and cancelled upstream if its create succeeds. Returns the job as it now
        stands, and whether to delete it upstream.
        """
        asked = job.upstream_id is not None
        answered = asked and await self.ctx.tracker.refresh_now(job)
        job = await self._stored(job.id)
        if job.status not in UNFINISHED:
            return job, True
        if asked and not answered:
            if _said_finished(job):
                # The last answer said the video was made: the hold stays, and the reconciler
                # captures or refunds it once the upstream answers again (or at max_age).
                log.warning("deleted job kept held until its upstream answers",
                            extra={"job_id": job.id, "upstream": job.upstream})
                return job, False
            log.warning("deleted job refunded without its upstream's answer",
                        extra={"job_id": job.id, "upstream": job.upstream})
        await self.ctx.tracker.end(job, DELETED, deleted=True)
        return job, True


def _said_finished(job: Job) -> bool:
    """Whether the upstream's last answer, though not final, said the video was made."""
    return job.progress >= 100 or job.content_url is not None


def _check_rate(conn: Connection, token_id: str, rpm: int) -> None:
    at = now()
    count, oldest = job_rows.started_since(conn, token_id, at - RATE_WINDOW_S)
    if count >= rpm:
        wait = math.ceil((oldest or at) + RATE_WINDOW_S - at)
        raise RateLimited(f"This token is limited to {rpm} jobs per minute.", retry_after=wait)


async def shared_video(ctx: VideoDeps, video_id: str) -> Job:
    """A video reached by a signed link: whoever holds the link, while the video is there."""
    async with ctx.sessions() as session:
        job = await JobRepository(session).get(video_id)
    if job is None or job.deleted_at is not None or job.status != "completed":
        raise NotFound(f"No video found with id '{video_id}'.", param="video_id")
    return job
