"""gateway_processes: the serving processes on this database, so an upstream's poll cap is
shared among them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_processes",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_gateway_processes")),
    )


def downgrade() -> None:
    op.drop_table("gateway_processes")
