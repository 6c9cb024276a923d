"""hold_timers.started_at indexed: the tablet's timers panel and the expiry sweep read recent ones

Revision ID: e7a1c3b5d924
Revises: d2c4a8e6f013
Create Date: 2026-12-04 03:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e7a1c3b5d924'
down_revision = 'd2c4a8e6f013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_hold_timers_started_at", "hold_timers", ["started_at"])


def downgrade():
    op.drop_index("ix_hold_timers_started_at", table_name="hold_timers")
