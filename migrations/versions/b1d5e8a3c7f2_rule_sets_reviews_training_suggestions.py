"""rules kept per site: published versions, the review's draft, acknowledgements, suggestions

Revision ID: b1d5e8a3c7f2
Revises: f5a8c2e4b7d1
Create Date: 2026-12-04 06:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'b1d5e8a3c7f2'
down_revision = 'f5a8c2e4b7d1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rule_set_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        sa.Column("retired", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_rule_set_versions_site_id_sites"),
        sa.ForeignKeyConstraint(["published_by_id"], ["staff.id"],
                                name="fk_rule_set_versions_published_by_id_staff"),
        sa.PrimaryKeyConstraint("id", name="pk_rule_set_versions"),
        sa.UniqueConstraint("site_id", "number", name="uq_rule_set_versions_site_id_number"),
    )
    op.create_index("ix_rule_set_versions_site_id", "rule_set_versions", ["site_id"])
    op.create_table(
        "rule_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=False),
        sa.Column("started_by_id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("decisions", sa.JSON(), nullable=False),
        sa.Column("additions", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("published_version_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_rule_reviews_site_id_sites"),
        sa.ForeignKeyConstraint(["base_version_id"], ["rule_set_versions.id"],
                                name="fk_rule_reviews_base_version_id_rule_set_versions"),
        sa.ForeignKeyConstraint(["started_by_id"], ["staff.id"],
                                name="fk_rule_reviews_started_by_id_staff"),
        sa.ForeignKeyConstraint(["published_version_id"], ["rule_set_versions.id"],
                                name="fk_rule_reviews_published_version_id_rule_set_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_rule_reviews"),
    )
    op.create_index("ix_rule_reviews_site_id", "rule_reviews", ["site_id"])
    op.create_table(
        "rule_acknowledgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("rule_code", sa.String(length=20), nullable=False),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"],
                                name="fk_rule_acknowledgements_staff_id_staff"),
        sa.ForeignKeyConstraint(["version_id"], ["rule_set_versions.id"],
                                name="fk_rule_acknowledgements_version_id_rule_set_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_rule_acknowledgements"),
        sa.UniqueConstraint("staff_id", "version_id", "rule_code",
                            name="uq_rule_acknowledgements_staff_id_version_id_rule_code"),
    )
    op.create_index("ix_rule_acknowledgements_staff_id", "rule_acknowledgements", ["staff_id"])
    op.create_index("ix_rule_acknowledgements_version_id", "rule_acknowledgements",
                    ["version_id"])
    op.create_table(
        "rule_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("rule_code", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_rule_suggestions_site_id_sites"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"],
                                name="fk_rule_suggestions_staff_id_staff"),
        sa.PrimaryKeyConstraint("id", name="pk_rule_suggestions"),
    )
    op.create_index("ix_rule_suggestions_site_id", "rule_suggestions", ["site_id"])
    op.create_table(
        "rule_suggestion_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("suggestion_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["suggestion_id"], ["rule_suggestions.id"],
                                name="fk_rule_suggestion_answers_suggestion_id_rule_suggestions"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"],
                                name="fk_rule_suggestion_answers_staff_id_staff"),
        sa.PrimaryKeyConstraint("id", name="pk_rule_suggestion_answers"),
        sa.UniqueConstraint("suggestion_id", name="uq_rule_suggestion_answers_suggestion_id"),
    )


def downgrade():
    op.drop_table("rule_suggestion_answers")
    op.drop_index("ix_rule_suggestions_site_id", table_name="rule_suggestions")
    op.drop_table("rule_suggestions")
    op.drop_index("ix_rule_acknowledgements_version_id", table_name="rule_acknowledgements")
    op.drop_index("ix_rule_acknowledgements_staff_id", table_name="rule_acknowledgements")
    op.drop_table("rule_acknowledgements")
    op.drop_index("ix_rule_reviews_site_id", table_name="rule_reviews")
    op.drop_table("rule_reviews")
    op.drop_index("ix_rule_set_versions_site_id", table_name="rule_set_versions")
    op.drop_table("rule_set_versions")
