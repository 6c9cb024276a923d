"""staff session versions: a session ends server-side at logout, PIN or password change

Revision ID: d2c4a8e6f013
Revises: b7e3f1a9c2d5
Create Date: 2026-12-04 03:20:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'd2c4a8e6f013'
down_revision = 'b7e3f1a9c2d5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("pin_session_version", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("password_session_version", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade():
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("password_session_version")
        batch.drop_column("pin_session_version")
