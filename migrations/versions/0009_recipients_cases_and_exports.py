"""recipients cases and exports

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:57:38

Recipients of case files (organisation, category, agreement, age public keys), legal teams' cases with their
members and records, and the exports built from them with the decision taken for each record.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recipients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('is_authority', sa.Boolean(), nullable=False),
    sa.Column('agreement_reference', sa.String(length=200), nullable=False),
    sa.Column('agreement_date', sa.Date(), nullable=False),
    sa.Column('contact', sa.String(length=500), nullable=False),
    sa.Column('age_recipients', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("category IN ('un_mechanism', 'international_court', 'domestic_prosecutor', 'referral_service', 'advocacy', 'media')", name=op.f('ck_recipients_known_category')),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_recipients_created_by_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recipients')),
    sa.UniqueConstraint('key', name=op.f('uq_recipients_key'))
    )
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=60), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_cases_created_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], name=op.f('fk_cases_recipient_id_recipients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('reference', name=op.f('uq_cases_reference'))
    )
    op.create_table('case_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_case_members_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['added_by_id'], ['accounts.id'], name=op.f('fk_case_members_added_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_members_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_members')),
    sa.UniqueConstraint('case_id', 'account_id', name='uq_case_members_account')
    )
    with op.batch_alter_table('case_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_members_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_members_case_id'), ['case_id'], unique=False)

    op.create_table('exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bundle_id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=True),
    sa.Column('checkpoint_size', sa.BigInteger(), nullable=True),
    sa.Column('failure', sa.String(length=64), nullable=True),
    sa.Column('downloads', sa.Integer(), nullable=False),
    sa.Column('first_downloaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
    sa.Column('cancel_reason', sa.String(length=32), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'building', 'ready', 'downloaded', 'cancelled', 'expired', 'failed')", name=op.f('ck_exports_known_status')),
    sa.ForeignKeyConstraint(['cancelled_by_id'], ['accounts.id'], name=op.f('fk_exports_cancelled_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_exports_case_id_cases')),
    sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], name=op.f('fk_exports_recipient_id_recipients')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['accounts.id'], name=op.f('fk_exports_requested_by_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports')),
    sa.UniqueConstraint('bundle_id', name=op.f('uq_exports_bundle_id'))
    )
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exports_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exports_recipient_id'), ['recipient_id'], unique=False)
        batch_op.create_index('ix_exports_status', ['status'], unique=False)

    op.create_table('case_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['added_by_id'], ['accounts.id'], name=op.f('fk_case_records_added_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_records_case_id_cases')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_case_records_incident_id_incidents')),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_case_records_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_records')),
    sa.UniqueConstraint('case_id', 'testimony_id', 'incident_id', name='uq_case_records_item')
    )
    with op.batch_alter_table('case_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_records_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_case_records_testimony_case', ['testimony_id', 'case_id'], unique=False)

    op.create_table('export_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('included', sa.Boolean(), nullable=False),
    sa.Column('disclosure', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=True),
    sa.Column('withheld_attachments', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_export_records_export_id_exports')),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_export_records_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_records')),
    sa.UniqueConstraint('export_id', 'testimony_id', name='uq_export_records_testimony')
    )
    with op.batch_alter_table('export_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_records_export_id'), ['export_id'], unique=False)
        batch_op.create_index('ix_export_records_testimony', ['testimony_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('export_records', schema=None) as batch_op:
        batch_op.drop_index('ix_export_records_testimony')
        batch_op.drop_index(batch_op.f('ix_export_records_export_id'))

    op.drop_table('export_records')
    with op.batch_alter_table('case_records', schema=None) as batch_op:
        batch_op.drop_index('ix_case_records_testimony_case')
        batch_op.drop_index(batch_op.f('ix_case_records_case_id'))

    op.drop_table('case_records')
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_index('ix_exports_status')
        batch_op.drop_index(batch_op.f('ix_exports_recipient_id'))
        batch_op.drop_index(batch_op.f('ix_exports_case_id'))

    op.drop_table('exports')
    with op.batch_alter_table('case_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_members_case_id'))
        batch_op.drop_index(batch_op.f('ix_case_members_account_id'))

    op.drop_table('case_members')
    op.drop_table('cases')
    op.drop_table('recipients')
