"""upstream error raw

The upstream's own words about a failed job move to ``upstream_error`` (the operator's);
``error_code`` and ``error_message`` keep only what a client may see. Rows written before this
revision held the upstream's words there verbatim: they are moved, and replaced by a code of the
public vocabulary and its fixed message (their text cannot be sanitized here, without the
upstreams' configuration to know their names, addresses and keys).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Codes the gateway wrote itself, with messages of its own: nothing to move.
OWN_CODES = ("expired", "submission_lost", "deleted", "no_upstream", "upstream_error",
             "internal_error", "invalid_input", "upstream_failed")
MODERATION = "moderation_blocked"
MESSAGES = {MODERATION: "The request was blocked by the provider's content moderation.",
            "upstream_failed": "The video could not be generated."}


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_error", sa.Text(), nullable=True))
    jobs = sa.table("jobs", sa.column("status", sa.String), sa.column("error_code", sa.String),
                    sa.column("error_message", sa.Text), sa.column("upstream_error", sa.Text))
    code, message = jobs.c.error_code, jobs.c.error_message
    raw = sa.func.coalesce(code + ": ", "") + sa.func.coalesce(message, "")
    moderated = code == MODERATION
    # Every right-hand side reads the row as it was before this UPDATE.
    op.execute(
        jobs.update()
        .where(jobs.c.status == "failed", sa.or_(code.is_(None), code.not_in(OWN_CODES)))
        .values(upstream_error=raw,
                error_code=sa.case((moderated, MODERATION), else_="upstream_failed"),
                error_message=sa.case((moderated, MESSAGES[MODERATION]),
                                      else_=MESSAGES["upstream_failed"]))
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("upstream_error")
