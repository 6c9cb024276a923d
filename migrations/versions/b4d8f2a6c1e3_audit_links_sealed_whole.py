"""audit links sealed whole: a format per link and a chained context

Format 1 links (all links written before) keep verifying as they were: their HMAC covers
(seq, prev_hash, action, entity, entity_id, payload). Links written from now on are format 2:
the HMAC also covers the link's time, actor, device and context (the actor's name as it was,
the item's text and limits, the unit's limits in force).

Revision ID: b4d8f2a6c1e3
Revises: a3c9e1f7b2d8
Create Date: 2026-12-04 05:30:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b4d8f2a6c1e3'
down_revision = 'a3c9e1f7b2d8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("format", sa.SmallInteger(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("context", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_column("context")
        batch.drop_column("format")
