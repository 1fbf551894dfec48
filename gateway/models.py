"""Every table, imported in one place so Alembic and metadata users see the whole schema."""

from gateway.archive.models import ArchivedAsset
from gateway.db import Base
from gateway.jobs.peers import GatewayProcess
from gateway.ledger.models import LedgerEntry
from gateway.tokens.models import Meta, Token
from gateway.videos.models import Job, VideoCharacter
from gateway.webhooks.models import WebhookDelivery

__all__ = ["ArchivedAsset", "Base", "GatewayProcess", "Job", "LedgerEntry", "Meta", "Token",
           "VideoCharacter", "WebhookDelivery"]
