"""Admin routes for tokens: issue, inspect, change, revoke, top up, read the ledger."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway.ledger.models import LedgerEntry
from gateway.ledger.pricing import micros_to_usd
from gateway.tokens.auth import AdminAuth, Context
from gateway.tokens.schemas import (
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    TokenUpdate,
    TopUp,
)
from gateway.tokens.service import TokenService

router = APIRouter(prefix="/admin/tokens", tags=["admin"], dependencies=[AdminAuth])


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    amount_usd: str
    job_id: str | None
    # True on the one entry that settled its job; a capture of less than the hold has a
    # refund of the rest beside it, which does not.
    settles: bool
    note: str | None
    created_at: int

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryOut:
        return cls(id=entry.id, kind=entry.kind, amount_usd=micros_to_usd(entry.amount_micros),
                   job_id=entry.job_id, settles=entry.settles_job_id is not None,
                   note=entry.note, created_at=int(entry.created_at))


class LedgerPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[LedgerEntryOut]
    has_more: bool


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(spec: TokenCreate, ctx: Context) -> TokenCreated:
    token, plaintext = await TokenService(ctx).create(spec)
    shown = TokenOut.of(token, webhook_secret=token.webhook_secret)
    return TokenCreated(**shown.model_dump(), token=plaintext)


@router.get("", response_model=TokenList)
async def list_tokens(ctx: Context) -> TokenList:
    return TokenList(data=[TokenOut.of(token) for token in await TokenService(ctx).list()])


@router.get("/{token_id}", response_model=TokenOut)
async def show_token(token_id: str, ctx: Context) -> TokenOut:
    return TokenOut.of(await TokenService(ctx).get(token_id))


@router.patch("/{token_id}", response_model=TokenOut)
async def update_token(token_id: str, change: TokenUpdate, ctx: Context) -> TokenOut:
    token, webhook_secret = await TokenService(ctx).update(token_id, change)
    return TokenOut.of(token, webhook_secret=webhook_secret)


@router.delete("/{token_id}", response_model=TokenOut)
async def revoke_token(token_id: str, ctx: Context) -> TokenOut:
    return TokenOut.of(await TokenService(ctx).revoke(token_id))


@router.post("/{token_id}/topup", response_model=TokenOut)
async def topup_token(token_id: str, spec: TopUp, ctx: Context) -> TokenOut:
    return TokenOut.of(await TokenService(ctx).topup(token_id, spec))


@router.post("/{token_id}/webhook_secret", response_model=TokenOut)
async def rotate_webhook_secret(token_id: str, ctx: Context) -> TokenOut:
    token, webhook_secret = await TokenService(ctx).rotate_webhook_secret(token_id)
    return TokenOut.of(token, webhook_secret=webhook_secret)


@router.get("/{token_id}/ledger", response_model=LedgerPage)
async def token_ledger(token_id: str, ctx: Context,
                       after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> LedgerPage:
    entries = await TokenService(ctx).ledger(token_id, after=after, limit=limit + 1)
    return LedgerPage(data=[LedgerEntryOut.of(entry) for entry in entries[:limit]],
                      has_more=len(entries) > limit)
