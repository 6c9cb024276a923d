"""people and sites admin: chained changes, a site's language and PIN length

Revision ID: a3c9e1f7b2d8
Revises: f8b2d4c6e035
Create Date: 2026-12-04 05:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'a3c9e1f7b2d8'
down_revision = 'f8b2d4c6e035'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("sites.id", name="fk_changes_site_id_sites"),
                  nullable=True),
        sa.Column("subject", sa.String(length=60), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Integer(),
                  sa.ForeignKey("staff.id", name="fk_changes_actor_id_staff"), nullable=True),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
    )
    op.create_index("ix_changes_site_id", "changes", ["site_id"])
    op.create_index("ix_changes_subject", "changes", ["subject"])
    # Plain ADD COLUMN (SQLite too): rebuilding `sites` would trip the keys that point at it.
    op.add_column("sites", sa.Column("language", sa.String(length=10), nullable=False,
                                     server_default="en"))
    op.add_column("sites", sa.Column("pin_length", sa.Integer(), nullable=False,
                                     server_default="6"))


def downgrade():
    op.drop_column("sites", "pin_length")
    op.drop_column("sites", "language")
    op.drop_index("ix_changes_subject", table_name="changes")
    op.drop_index("ix_changes_site_id", table_name="changes")
    op.drop_table("changes")
