"""sign_in_budgets: strangers' wrong guesses per site and per device, across people

Revision ID: e2b7c4f9a1d6
Revises: d7f3b9e1a5c2
Create Date: 2026-12-04 05:50:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'e2b7c4f9a1d6'
down_revision = 'd7f3b9e1a5c2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sign_in_budgets",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_sign_in_budgets"),
    )


def downgrade():
    op.drop_table("sign_in_budgets")
