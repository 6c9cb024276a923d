"""reading_seals: a chained digest per sensor per hour of readings

Revision ID: d7f3b9e1a5c2
Revises: c5e9a2d7f418
Create Date: 2026-12-04 06:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'd7f3b9e1a5c2'
down_revision = 'c5e9a2d7f418'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "reading_seals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("sensor_id", sa.Integer(),
                  sa.ForeignKey("sensors.id", name="fk_reading_seals_sensor_id_sensors"),
                  nullable=False),
        sa.Column("hour_start", UTCDateTime(), nullable=False),
        sa.Column("received_through", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("sealed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reading_seals"),
    )
    op.create_index("ix_reading_seals_sensor_hour", "reading_seals", ["sensor_id", "hour_start"])


def downgrade():
    op.drop_index("ix_reading_seals_sensor_hour", table_name="reading_seals")
    op.drop_table("reading_seals")
