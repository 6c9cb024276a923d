"""answers.source (a temperature read from the unit's sensor) and checklist_items.unit_name

Revision ID: f5a8c2e4b7d1
Revises: e2b7c4f9a1d6
Create Date: 2026-12-04 05:45:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f5a8c2e4b7d1'
down_revision = 'e2b7c4f9a1d6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("source", sa.String(length=20), nullable=True))
    with op.batch_alter_table("checklist_items") as batch:
        batch.add_column(sa.Column("unit_name", sa.String(length=120), nullable=True))


def downgrade():
    with op.batch_alter_table("checklist_items") as batch:
        batch.drop_column("unit_name")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("source")
