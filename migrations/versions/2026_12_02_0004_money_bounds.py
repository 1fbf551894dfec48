"""money bounds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# gateway.ledger.pricing.MAX_MICROS when this revision was written: USD 1,000,000,000.
MAX_MICROS = 10**15
CHECKS = (
    ("tokens", "funds_within_bound", f"balance_micros + held_micros <= {MAX_MICROS}"),
    ("ledger", "amount_within_bound", f"amount_micros >= 0 AND amount_micros <= {MAX_MICROS}"),
    ("jobs", "price_within_bound", f"price_micros >= 0 AND price_micros <= {MAX_MICROS}"),
)


def _refuse_rows_past_the_bounds() -> None:
    """Money past the bounds (an overflowed balance SQLite turned into a float) is not ours to
    round off: stop, naming the rows, and let the operator correct them."""
    bind = op.get_bind()
    for table, name, condition in CHECKS:
        rows = bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE NOT ({condition})"))
        count = rows.scalar_one()
        if count:
            raise RuntimeError(
                f"{count} row(s) of table {table} break {name} ({condition}); correct them "
                "(see GET /admin/reconcile) and migrate again"
            )


def upgrade() -> None:
    _refuse_rows_past_the_bounds()
    # On SQLite a constraint can only be added by recreating the table (batch mode does).
    for table, name, condition in CHECKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)


def downgrade() -> None:
    for table, name, _condition in reversed(CHECKS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
