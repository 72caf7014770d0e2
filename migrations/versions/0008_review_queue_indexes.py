"""review queue indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:00:00

The reviewer's queue filtered on an incident type reads the matching testimony ids from these indexes, newest
first, and stops once a page is full (`intake.review.queries.matching_incidents`).
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_type_month', ['type', 'month', 'region', 'testimony_id'], unique=False)
        batch_op.create_index('ix_incidents_type_region', ['type', 'region', 'testimony_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_type_region')
        batch_op.drop_index('ix_incidents_type_month')
