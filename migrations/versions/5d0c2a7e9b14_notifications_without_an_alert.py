"""Notifications without an alert: the daily summary goes through the outbox too

Revision ID: 5d0c2a7e9b14
Revises: 43b912788f45
Create Date: 2026-12-03 18:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d0c2a7e9b14'
down_revision = '43b912788f45'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('alert_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    # A summary's rows have no alert; they cannot stay under the old rule.
    op.execute("DELETE FROM notifications WHERE alert_id IS NULL")
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('alert_id', existing_type=sa.Integer(), nullable=False)
