"""review assignments and access grants

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:23:19
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('granted_by_id', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('expires_at > granted_at', name=op.f('ck_access_grants_expires_after_granted')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_access_grants_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['granted_by_id'], ['accounts.id'], name=op.f('fk_access_grants_granted_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['accounts.id'], name=op.f('fk_access_grants_revoked_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_access_grants_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_grants'))
    )
    with op.batch_alter_table('access_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_grants_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_grants_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['assigned_by_id'], ['accounts.id'], name=op.f('fk_assignments_assigned_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['accounts.id'], name=op.f('fk_assignments_reviewer_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_assignments_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('testimony_id', 'reviewer_id', name='uq_assignments_reviewer')
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_reviewer_id'), ['reviewer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_testimony_id'), ['testimony_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_testimony_id'))
        batch_op.drop_index(batch_op.f('ix_assignments_reviewer_id'))

    op.drop_table('assignments')
    with op.batch_alter_table('access_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_grants_testimony_id'))
        batch_op.drop_index(batch_op.f('ix_access_grants_account_id'))

    op.drop_table('access_grants')
