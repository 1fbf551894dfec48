"""Characters (cameos): created on an upstream of the caller's group, owned by the caller.

Characters are not charged: no price for them exists in the configuration's pricing tables.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from pydantic import BaseModel

from gateway.db import now
from gateway.errors import InvalidRequest, NotFound, NoUpstream
from gateway.tokens.crypto import is_id, new_id
from gateway.tokens.models import Token
from gateway.upstreams.base import Character
from gateway.upstreams.flavor import CHARACTERS, Derivations, Flavor
from gateway.upstreams.pool import Placement
from gateway.videos.deps import VideoDeps
from gateway.videos.models import VideoCharacter
from gateway.videos.sources import CharacterParams

CAN_MAKE = frozenset({CHARACTERS})


class CharacterOut(BaseModel):
    id: str
    object: str = "video.character"
    name: str | None
    created_at: int

    @classmethod
    def of(cls, row: VideoCharacter) -> CharacterOut:
        return cls(id=row.id, name=row.name, created_at=int(row.created_at))


class CharacterService:
    def __init__(self, ctx: VideoDeps, token: Token) -> None:
        self.ctx = ctx
        self.token = token

    def _model(self) -> str:
        """Characters belong to no model: any upstream of the group that makes them will do."""
        models = sorted(self.ctx.settings.known_models)
        for model in models:
            if self.ctx.pool.serves(self.token.group, model, CAN_MAKE):
                return model
        if any(self.ctx.pool.serves(self.token.group, model) for model in models):
            raise InvalidRequest("No provider for this token can create characters.")
        raise NoUpstream("No upstream serves this token's group.")

    async def create(self, params: CharacterParams) -> VideoCharacter:
        name, upload = params.name, params.upload

        def call(flavor: Flavor, placement: Placement) -> Awaitable[Character]:
            # Only flavors that declared CHARACTERS are eligible here.
            return cast(Derivations, flavor).create_character(name, upload,
                                                              placement.key)

        placement, created = await self.ctx.pool.submit(self.token.group, self._model(), call,
                                                        CAN_MAKE)
        row = VideoCharacter(id=new_id("char"), token_id=self.token.id, name=name,
                             upstream=placement.upstream.name,
                             upstream_key_index=placement.key_index, upstream_id=created.id,
                             created_at=now())
        async with self.ctx.sessions() as session, session.begin():
            session.add(row)
        return row

    async def get(self, character_id: str) -> VideoCharacter:
        row = None
        if is_id(character_id, "char"):
            async with self.ctx.sessions() as session:
                row = await session.get(VideoCharacter, character_id)
        if row is None or row.token_id != self.token.id:
            raise NotFound(f"No character found with id '{character_id}'.",
                           param="character_id")
        return row
