"""reviewers analysis

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:30:19
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('analyst_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.LargeBinary(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['accounts.id'], name=op.f('fk_analyst_notes_author_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_analyst_notes_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analyst_notes'))
    )
    with op.batch_alter_table('analyst_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analyst_notes_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.LargeBinary(), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('reliability', 'credibility', 'verification')", name=op.f('ck_assessments_known_kind')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['accounts.id'], name=op.f('fk_assessments_reviewer_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_assessments_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index('ix_assessments_testimony_kind', ['testimony_id', 'kind', 'id'], unique=False)

    op.create_table('identifying_spans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('stop', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removed_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('name', 'address', 'unit', 'other')", name=op.f('ck_identifying_spans_known_kind')),
    sa.CheckConstraint('start >= 0 AND stop > start', name=op.f('ck_identifying_spans_ordered')),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_identifying_spans_created_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['removed_by_id'], ['accounts.id'], name=op.f('fk_identifying_spans_removed_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_identifying_spans_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identifying_spans'))
    )
    with op.batch_alter_table('identifying_spans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identifying_spans_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('record_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('other_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.LargeBinary(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removed_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('corroborates', 'duplicate')", name=op.f('ck_record_links_known_kind')),
    sa.CheckConstraint('testimony_id <> other_id', name=op.f('ck_record_links_not_itself')),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_record_links_created_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['other_id'], ['testimonies.id'], name=op.f('fk_record_links_other_id_testimonies')),
    sa.ForeignKeyConstraint(['removed_by_id'], ['accounts.id'], name=op.f('fk_record_links_removed_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_record_links_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_links'))
    )
    with op.batch_alter_table('record_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_record_links_other_id'), ['other_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_record_links_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('incident_codings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=48), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.LargeBinary(), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_codings_incident_id_incidents')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['accounts.id'], name=op.f('fk_incident_codings_reviewer_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_incident_codings_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_codings'))
    )
    with op.batch_alter_table('incident_codings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_codings_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_codings_testimony_id'), ['testimony_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('incident_codings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_codings_testimony_id'))
        batch_op.drop_index(batch_op.f('ix_incident_codings_incident_id'))

    op.drop_table('incident_codings')
    with op.batch_alter_table('record_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_links_testimony_id'))
        batch_op.drop_index(batch_op.f('ix_record_links_other_id'))

    op.drop_table('record_links')
    with op.batch_alter_table('identifying_spans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identifying_spans_testimony_id'))

    op.drop_table('identifying_spans')
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index('ix_assessments_testimony_kind')

    op.drop_table('assessments')
    with op.batch_alter_table('analyst_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analyst_notes_testimony_id'))

    op.drop_table('analyst_notes')
