"""sign_in_guards: wrong PINs and passwords counted per person, kind and device

Replaces staff.failed_pins and staff.locked_until, which locked a person's PIN and password
together, from anywhere, for anyone.

Revision ID: f8b2d4c6e035
Revises: e7a1c3b5d924
Create Date: 2026-12-04 03:45:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'f8b2d4c6e035'
down_revision = 'e7a1c3b5d924'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sign_in_guards",
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff.id"), primary_key=True),
        sa.Column("kind", sa.String(length=10), primary_key=True),
        sa.Column("device_id", sa.String(length=32), primary_key=True),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("trusted_at", UTCDateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_pins")


def downgrade():
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("failed_pins", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True))
    op.drop_table("sign_in_guards")
