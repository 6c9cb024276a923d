"""ingest tokens and HTTP dead letters belong to a site

Revision ID: 8db85e84950e
Revises: 3e6fc561099c
Create Date: 2026-11-28 02:11:34.467226

Existing tokens were issued before tokens had a site, and nothing records which kitchen's
devices use them. So:

- exactly one site: every token (and every HTTP dead letter) goes to it and keeps working;
- several sites: every token goes to the site with the lowest id (so it stays listed there)
  and the live ones are revoked, because a token left live would now post under a site it may
  not serve; each site's admin issues new tokens. HTTP dead letters stay without a site,
  shown to every admin, as MQTT ones are;
- no site: there is no admin to own a token (every person belongs to a site), so the tokens
  and their idempotency keys are deleted.

"""
import logging
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = '8db85e84950e'
down_revision = '3e6fc561099c'
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")

sites = sa.table("sites", sa.column("id", sa.Integer))
tokens = sa.table("ingest_tokens", sa.column("id", sa.Integer), sa.column("site_id", sa.Integer),
                  sa.column("revoked_at", app.models.base.UTCDateTime(timezone=True)))
keys = sa.table("ingest_idempotency_keys", sa.column("token_id", sa.Integer))
dead_letters = sa.table("dead_letters", sa.column("source", sa.String),
                        sa.column("site_id", sa.Integer))


@contextmanager
def _idempotency_keys_set_aside():
    """Hold the idempotency keys aside while SQLite rebuilds ingest_tokens.

    SQLite changes a column by copying the table and dropping the old one; Brigade connects
    with foreign keys on (and the pragma cannot change inside the migration's transaction), so
    ingest_tokens cannot be dropped while keys point at it. PostgreSQL alters in place.
    """
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("CREATE TEMP TABLE idempotency_keys_aside AS SELECT * FROM ingest_idempotency_keys")
    op.execute("DELETE FROM ingest_idempotency_keys")
    yield
    op.execute("INSERT INTO ingest_idempotency_keys SELECT * FROM idempotency_keys_aside")
    op.execute("DROP TABLE idempotency_keys_aside")


def upgrade():
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_dead_letters_site_id'), ['site_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_dead_letters_site_id_sites'), 'sites', ['site_id'], ['id'])

    with op.batch_alter_table('ingest_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))

    conn = op.get_bind()
    site_ids = conn.execute(sa.select(sites.c.id).order_by(sites.c.id)).scalars().all()
    if not site_ids:
        conn.execute(sa.delete(keys))
        deleted = conn.execute(sa.delete(tokens)).rowcount
        if deleted:
            logger.warning("no site: deleted %s ingest token(s) nobody could own", deleted)
    else:
        conn.execute(sa.update(tokens).values(site_id=site_ids[0]))
        if len(site_ids) == 1:
            conn.execute(sa.update(dead_letters).where(dead_letters.c.source == "http")
                         .values(site_id=site_ids[0]))
        else:
            revoked = conn.execute(sa.update(tokens).where(tokens.c.revoked_at.is_(None))
                                   .values(revoked_at=app.models.base.utcnow())).rowcount
            if revoked:
                logger.warning("%s sites: revoked %s ingest token(s) of unknown site and listed "
                               "them under site %s; each site's admin issues new ones",
                               len(site_ids), revoked, site_ids[0])

    with _idempotency_keys_set_aside():
        with op.batch_alter_table('ingest_tokens', schema=None) as batch_op:
            batch_op.alter_column('site_id', existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(batch_op.f('ix_ingest_tokens_site_id'), ['site_id'], unique=False)
            batch_op.create_foreign_key(batch_op.f('fk_ingest_tokens_site_id_sites'), 'sites', ['site_id'], ['id'])


def downgrade():
    with _idempotency_keys_set_aside():
        with op.batch_alter_table('ingest_tokens', schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f('fk_ingest_tokens_site_id_sites'), type_='foreignkey')
            batch_op.drop_index(batch_op.f('ix_ingest_tokens_site_id'))
            batch_op.drop_column('site_id')

    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_dead_letters_site_id_sites'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_dead_letters_site_id'))
        batch_op.drop_column('site_id')
