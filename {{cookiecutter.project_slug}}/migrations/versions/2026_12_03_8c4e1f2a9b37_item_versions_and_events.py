"""item versions and item_events

Revision ID: 8c4e1f2a9b37
Revises: 3f2a9c1d7b10
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c4e1f2a9b37"
down_revision: str | Sequence[str] | None = "3f2a9c1d7b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing items start at version 1, as new ones do (a constant default: no table rewrite).
    op.add_column(
        "items",
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.create_table(
        "item_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('created', 'updated', 'deleted')",
            name=op.f("ck_item_events_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_events")),
    )
    op.create_index("ix_item_events_item_id_id", "item_events", ["item_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_item_events_item_id_id", table_name="item_events")
    op.drop_table("item_events")
    op.drop_column("items", "version")
