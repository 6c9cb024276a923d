"""display_tokens and live_versions: wall displays and the per-site change counter screens poll

Revision ID: c5e9a2d7f418
Revises: b4d8f2a6c1e3
Create Date: 2026-12-04 05:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'c5e9a2d7f418'
down_revision = 'b4d8f2a6c1e3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "live_versions",
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("sites.id"), primary_key=True),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    )
    op.create_table(
        "display_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("display_tokens") as batch:
        batch.create_index(batch.f("ix_display_tokens_site_id"), ["site_id"])


def downgrade():
    with op.batch_alter_table("display_tokens") as batch:
        batch.drop_index(batch.f("ix_display_tokens_site_id"))
    op.drop_table("display_tokens")
    op.drop_table("live_versions")
