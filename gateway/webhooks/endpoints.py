"""Admin routes for webhook deliveries: what was sent, how it went, and sending it again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.tokens.auth import AdminAuth, Context
from gateway.webhooks import service
from gateway.webhooks.schemas import DeliveryList, DeliveryOut

router = APIRouter(prefix="/admin/webhooks", tags=["admin"], dependencies=[AdminAuth])


@router.get("", response_model=DeliveryList)
async def list_deliveries(ctx: Context, status: str | None = None, token_id: str | None = None,
                          after: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> DeliveryList:
    rows = await service.deliveries(ctx, status=status, token_id=token_id, after=after,
                                    limit=limit + 1)
    data = [DeliveryOut.of(row) for row in rows[:limit]]
    return DeliveryList(data=data, first_id=data[0].id if data else None,
                        last_id=data[-1].id if data else None, has_more=len(rows) > limit)


@router.post("/{delivery_id}/replay", response_model=DeliveryOut)
async def replay_delivery(delivery_id: str, ctx: Context) -> DeliveryOut:
    return DeliveryOut.of(await service.replay(ctx, delivery_id))
