"""sensors.key in byte order on PostgreSQL: a device's report finds its sensors by index

Revision ID: b7e3f1a9c2d5
Revises: 9a41c7d2e803
Create Date: 2026-12-03 23:50:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b7e3f1a9c2d5'
down_revision = '9a41c7d2e803'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_sensors_key_bytes", "sensors", ["key"],
                    postgresql_ops={"key": "text_pattern_ops"})


def downgrade():
    op.drop_index("ix_sensors_key_bytes", table_name="sensors")
