"""ingest_sessions: how far the broker is known to have ingest's acknowledgements

Revision ID: 9a41c7d2e803
Revises: 5d0c2a7e9b14
Create Date: 2026-12-03 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from sensors.db import UTCDateTime


# revision identifiers, used by Alembic.
revision = '9a41c7d2e803'
down_revision = '5d0c2a7e9b14'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ingest_sessions',
                    sa.Column('session_key', sa.String(length=200), nullable=False),
                    sa.Column('acks_confirmed_through', UTCDateTime(), nullable=True),
                    sa.PrimaryKeyConstraint('session_key', name=op.f('pk_ingest_sessions')))


def downgrade():
    op.drop_table('ingest_sessions')
