"""checklist versions of a site's own (its rules retire items or add store items), and an
optional photo on a rule suggestion

Revision ID: c4e7a9d2b6f1
Revises: b1d5e8a3c7f2
Create Date: 2026-12-04 08:20:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'c4e7a9d2b6f1'
down_revision = 'b1d5e8a3c7f2'
branch_labels = None
depends_on = None


def _add_reference(table: str, column: str, target: str, name: str) -> None:
    """A nullable column referring to ``target``(id), added in place: no copy of the table,
    which other tables refer to (SQLite takes the reference inline, PostgreSQL as a constraint)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f'ALTER TABLE {table} ADD COLUMN {column} INTEGER '
                   f'CONSTRAINT {name} REFERENCES {target} (id)')
    else:
        op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
        op.create_foreign_key(name, table, target, [column], ["id"])


def upgrade():
    _add_reference("checklist_definitions", "site_id", "sites",
                   "fk_checklist_definitions_site_id_sites")
    _add_reference("checklist_definitions", "base_id", "checklist_definitions",
                   "fk_checklist_definitions_base_id_checklist_definitions")
    _add_reference("checklist_definitions", "rules_version_id", "rule_set_versions",
                   "fk_checklist_definitions_rules_version_id_rule_set_versions")
    op.create_index("ix_checklist_definitions_site_id", "checklist_definitions", ["site_id"])
    _add_reference("rule_suggestions", "photo_id", "photos", "fk_rule_suggestions_photo_id_photos")


def downgrade():
    # The schema before this knew no site's own checklist (it would hand one site's version to
    # every site) and no suggestion's photo (its chained link would no longer verify).
    bind = op.get_bind()
    own = bind.execute(sa.text("SELECT count(*) FROM checklist_definitions "
                               "WHERE site_id IS NOT NULL")).scalar()
    photos = bind.execute(sa.text("SELECT count(*) FROM rule_suggestions "
                                  "WHERE photo_id IS NOT NULL")).scalar()
    if own or photos:
        raise RuntimeError(f"cannot downgrade: {own} checklist version(s) of a site's own and "
                           f"{photos} suggestion photo(s) exist, which the earlier schema "
                           "cannot hold")
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:  # the table copies below would trip the references to checklist_definitions
        op.execute("PRAGMA foreign_keys=OFF")
    else:
        op.drop_constraint("fk_rule_suggestions_photo_id_photos", "rule_suggestions",
                           type_="foreignkey")
        for name in ("fk_checklist_definitions_rules_version_id_rule_set_versions",
                     "fk_checklist_definitions_base_id_checklist_definitions",
                     "fk_checklist_definitions_site_id_sites"):
            op.drop_constraint(name, "checklist_definitions", type_="foreignkey")
    op.drop_index("ix_checklist_definitions_site_id", "checklist_definitions")
    with op.batch_alter_table("rule_suggestions") as batch:
        batch.drop_column("photo_id")
    with op.batch_alter_table("checklist_definitions") as batch:
        batch.drop_column("rules_version_id")
        batch.drop_column("base_id")
        batch.drop_column("site_id")
    if sqlite:
        op.execute("PRAGMA foreign_keys=ON")
