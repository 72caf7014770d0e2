"""interviews, incidents and consent

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:28:24
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('interviews_not_held',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interviewer_id', sa.Integer(), nullable=True),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.CheckConstraint("stage IN ('readiness', 'consent')", name=op.f('ck_interviews_not_held_known_stage')),
    sa.ForeignKeyConstraint(['interviewer_id'], ['accounts.id'], name=op.f('fk_interviews_not_held_interviewer_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interviews_not_held'))
    )
    with op.batch_alter_table('interviews_not_held', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_interviews_not_held_interviewer_id'), ['interviewer_id'], unique=False)

    op.create_table('consent_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('script_language', sa.String(length=8), nullable=False),
    sa.Column('script_hash', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('capacity_confirmed', sa.Boolean(), nullable=False),
    sa.Column('voluntariness_confirmed', sa.Boolean(), nullable=False),
    sa.Column('witness_present', sa.Boolean(), nullable=False),
    sa.Column('interpreter_present', sa.Boolean(), nullable=False),
    sa.Column('is_minor', sa.Boolean(), nullable=False),
    sa.Column('guardian_consented', sa.Boolean(), nullable=False),
    sa.Column('child_assented', sa.Boolean(), nullable=False),
    sa.Column('best_interests_given', sa.Boolean(), nullable=False),
    sa.Column('grants', sa.JSON(), nullable=False),
    sa.Column('media', sa.JSON(), nullable=False),
    sa.Column('exclusions', sa.JSON(), nullable=False),
    sa.Column('follow_up_permitted', sa.Boolean(), nullable=False),
    sa.Column('review_date', sa.Date(), nullable=True),
    sa.Column('particulars', sa.LargeBinary(), nullable=True),
    sa.CheckConstraint("method IN ('written', 'oral_witnessed', 'mark')", name=op.f('ck_consent_versions_known_method')),
    sa.CheckConstraint('number >= 1', name=op.f('ck_consent_versions_positive_number')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['accounts.id'], name=op.f('fk_consent_versions_recorded_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_consent_versions_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_versions')),
    sa.UniqueConstraint('testimony_id', 'number', name='uq_consent_versions_number')
    )
    with op.batch_alter_table('consent_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_versions_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('consent_withdrawals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('purposes', sa.JSON(), nullable=False),
    sa.Column('received_how', sa.String(length=16), nullable=False),
    sa.Column('erasure', sa.Boolean(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['accounts.id'], name=op.f('fk_consent_withdrawals_recorded_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_consent_withdrawals_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_withdrawals'))
    )
    with op.batch_alter_table('consent_withdrawals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_withdrawals_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=48), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('details', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_incidents_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_testimony_id'), ['testimony_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team', sa.String(length=64), nullable=True))

    with op.batch_alter_table('testimonies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('details', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('interviewed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('submission_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('submission_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_testimonies_idempotency_key', ['interviewer_id', 'idempotency_key'])



def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM consent_versions")).scalar():
        raise RuntimeError("consent versions exist: downgrading would lose what people consented to")
    with op.batch_alter_table('testimonies', schema=None) as batch_op:
        batch_op.drop_constraint('uq_testimonies_idempotency_key', type_='unique')
        batch_op.drop_column('submission_key')
        batch_op.drop_column('submission_digest')
        batch_op.drop_column('idempotency_key')
        batch_op.drop_column('submitted_at')
        batch_op.drop_column('revision')
        batch_op.drop_column('interviewed_on')
        batch_op.drop_column('details')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('team')

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_testimony_id'))

    op.drop_table('incidents')
    with op.batch_alter_table('consent_withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_withdrawals_testimony_id'))

    op.drop_table('consent_withdrawals')
    with op.batch_alter_table('consent_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_versions_testimony_id'))

    op.drop_table('consent_versions')
    with op.batch_alter_table('interviews_not_held', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_interviews_not_held_interviewer_id'))

    op.drop_table('interviews_not_held')
