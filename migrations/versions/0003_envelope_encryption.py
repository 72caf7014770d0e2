"""envelope encryption: data keys, identities, testimonies, attachments

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:31:17
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('owner', sa.String(length=16), nullable=False),
    sa.Column('kek_version', sa.Integer(), nullable=True),
    sa.Column('wrapped', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rewrapped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("owner IN ('testimony', 'person', 'account')", name=op.f('ck_data_keys_known_owner')),
    sa.CheckConstraint('(destroyed_at IS NULL AND wrapped IS NOT NULL AND kek_version IS NOT NULL) OR (destroyed_at IS NOT NULL AND wrapped IS NULL AND kek_version IS NULL)', name=op.f('ck_data_keys_wrapped_or_destroyed')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_keys'))
    )
    op.create_table('kek_versions',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('primary', 'active', 'retired')", name=op.f('ck_kek_versions_known_state')),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_kek_versions'))
    )
    op.create_table('persons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pseudonym', sa.String(length=16), nullable=False),
    sa.Column('data_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('identity', sa.LargeBinary(), nullable=True),
    sa.Column('name_tag', sa.String(length=8), nullable=True),
    sa.Column('other_name_tag', sa.String(length=8), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_persons_created_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'], name=op.f('fk_persons_data_key_id_data_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persons')),
    sa.UniqueConstraint('data_key_id', name=op.f('uq_persons_data_key_id')),
    sa.UniqueConstraint('pseudonym', name=op.f('uq_persons_pseudonym'))
    )
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_persons_name_tag'), ['name_tag'], unique=False)
        batch_op.create_index(batch_op.f('ix_persons_other_name_tag'), ['other_name_tag'], unique=False)

    op.create_table('testimonies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pseudonym', sa.String(length=16), nullable=False),
    sa.Column('interviewer_id', sa.Integer(), nullable=True),
    sa.Column('data_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('narrative', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'submitted', 'in_review', 'reviewed', 'archived')", name=op.f('ck_testimonies_known_status')),
    sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'], name=op.f('fk_testimonies_data_key_id_data_keys')),
    sa.ForeignKeyConstraint(['interviewer_id'], ['accounts.id'], name=op.f('fk_testimonies_interviewer_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['pseudonym'], ['persons.pseudonym'], name=op.f('fk_testimonies_pseudonym_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_testimonies')),
    sa.UniqueConstraint('data_key_id', name=op.f('uq_testimonies_data_key_id'))
    )
    with op.batch_alter_table('testimonies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_testimonies_interviewer_id'), ['interviewer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_testimonies_pseudonym'), ['pseudonym'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('testimony_id', sa.Integer(), nullable=False),
    sa.Column('medium', sa.String(length=16), nullable=False),
    sa.Column('graphic', sa.Boolean(), nullable=False),
    sa.Column('storage', sa.String(length=16), nullable=False),
    sa.Column('blob_name', sa.String(length=32), nullable=False),
    sa.Column('stream_header', sa.LargeBinary(), nullable=False),
    sa.Column('stored_bytes', sa.BigInteger(), nullable=False),
    sa.Column('details', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("medium IN ('audio', 'photo', 'video', 'document')", name=op.f('ck_attachments_known_medium')),
    sa.CheckConstraint("storage IN ('database', 'files')", name=op.f('ck_attachments_known_storage')),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_attachments_created_by_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['testimony_id'], ['testimonies.id'], name=op.f('fk_attachments_testimony_id_testimonies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('blob_name', name=op.f('uq_attachments_blob_name'))
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_testimony_id'), ['testimony_id'], unique=False)

    op.create_table('attachment_chunks',
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachments.id'], name=op.f('fk_attachment_chunks_attachment_id_attachments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attachment_id', 'idx', name=op.f('pk_attachment_chunks'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        # Ciphertext does not compress: store the chunks out of line without trying.
        op.execute("ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_accounts_data_key_id'), ['data_key_id'])
        batch_op.create_foreign_key(batch_op.f('fk_accounts_data_key_id_data_keys'), 'data_keys', ['data_key_id'], ['id'])



def downgrade() -> None:
    # Two-factor seeds sealed under accounts' data keys cannot be read without `data_keys`: going back would lock
    # every such account out, and would destroy every testimony and identity. Refuse instead.
    bind = op.get_bind()
    sealed = bind.execute(sa.text("SELECT count(*) FROM accounts WHERE data_key_id IS NOT NULL")).scalar()
    records = bind.execute(sa.text("SELECT count(*) FROM data_keys")).scalar()
    if sealed or records:
        raise RuntimeError(
            f"Refusing to downgrade below 0003: {records} data key(s) exist ({sealed} of them sealing two-factor "
            "seeds); without them the testimonies, identities and seeds they protect are lost for good."
        )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_accounts_data_key_id_data_keys'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_accounts_data_key_id'), type_='unique')
        batch_op.drop_column('data_key_id')

    op.drop_table('attachment_chunks')
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_testimony_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('testimonies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_testimonies_pseudonym'))
        batch_op.drop_index(batch_op.f('ix_testimonies_interviewer_id'))

    op.drop_table('testimonies')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_persons_other_name_tag'))
        batch_op.drop_index(batch_op.f('ix_persons_name_tag'))

    op.drop_table('persons')
    op.drop_table('kek_versions')
    op.drop_table('data_keys')
