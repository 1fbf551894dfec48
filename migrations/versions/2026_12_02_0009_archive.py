"""archive: the gateway's own copy of each finished video, and its retention

A job's archive state, lease and retry schedule, the assets its upstream offered, and one row
per asset kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# archive.give_up_after_s's default, as it was when this revision was written.
_GIVE_UP_AFTER_S = 3 * 24 * 3600.0
_FLOATS = ("archive_next_at", "archive_lease_until", "archive_deadline", "archived_at",
           "retain_until")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("archive_assets", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("archive_attempts", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("archive_lease_owner", sa.String(length=64),
                                      nullable=True))
        for name in _FLOATS:
            batch_op.add_column(sa.Column(name, sa.Double(), nullable=True))
        batch_op.create_index("ix_jobs_archive_state_archive_next_at",
                              ["archive_state", "archive_next_at"], unique=False)
        batch_op.create_index("ix_jobs_archive_state_retain_until",
                              ["archive_state", "retain_until"], unique=False)
    # Videos finished before the archive existed are archived too: from the copy the archive's
    # predecessor took when there is one, else from the upstream while its link lasts (one
    # try when it is long past: the operator then sees the job listed as failed).
    op.execute(sa.text(
        "UPDATE jobs SET archive_state = 'pending', archive_next_at = 0, "
        "archive_deadline = COALESCE(expires_at, completed_at + :give_up, 0) "
        "WHERE status = 'completed' AND deleted_at IS NULL"
    ).bindparams(give_up=_GIVE_UP_AFTER_S))
    op.create_table(
        "archived_assets",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"],
                                name=op.f("fk_archived_assets_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "variant", name=op.f("pk_archived_assets")),
    )


def downgrade() -> None:
    op.drop_table("archived_assets")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_archive_state_retain_until")
        batch_op.drop_index("ix_jobs_archive_state_archive_next_at")
        for name in (*reversed(_FLOATS), "archive_lease_owner", "archive_attempts",
                     "archive_assets", "archive_state"):
            batch_op.drop_column(name)
