"""audit events are append-only

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 13:20:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_refuse_{event.lower()} BEFORE {event} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION intake_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_events_refuse_change BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION intake_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_refuse_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_events_refuse_update")
        op.execute("DROP TRIGGER audit_events_refuse_delete")
        return
    op.execute("DROP TRIGGER audit_events_refuse_truncate ON audit_events")
    op.execute("DROP TRIGGER audit_events_refuse_change ON audit_events")
    op.execute("DROP FUNCTION intake_refuse_change()")
