"""audit events hash-chained in sequence; signed checkpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:40:00

Events recorded before this revision are numbered in the order they were stored and chained as if they had been
appended now, so sign-ins and account changes made earlier stay in the verifiable log.
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from intake.core.audit.chain import GENESIS, encode_event, event_hash
from intake.core.audit.models import canonical_json, format_time

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_OLD_COLUMNS = ("occurred_at", "actor_id", "actor_roles", "action", "target_type", "target_ids", "reason", "details",
                "request_id")


def _refuse_changes(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_refuse_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        return
    op.execute(f"CREATE TRIGGER {table}_refuse_change BEFORE UPDATE OR DELETE ON {table} "
               "FOR EACH ROW EXECUTE FUNCTION intake_refuse_change()")
    op.execute(f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
               "FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change()")


def _allow_changes(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER {table}_refuse_update")
        op.execute(f"DROP TRIGGER {table}_refuse_delete")
        return
    op.execute(f"DROP TRIGGER {table}_refuse_truncate ON {table}")
    op.execute(f"DROP TRIGGER {table}_refuse_change ON {table}")


# Rows may only be appended at the end, in sequence: events numbered one past the last and linked to its hash,
# checkpoints numbered one past the last and covering more events. SQLite's REPLACE, which skips the delete
# triggers, is refused too, since it inserts a number that exists.
_SQLITE_IN_SEQUENCE = {
    "audit_events": (
        "NEW.seq IS NOT coalesce((SELECT max(seq) FROM audit_events), 0) + 1 "
        "OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), zeroblob(32))"
    ),
    "audit_checkpoints": (
        "NEW.id IS NOT coalesce((SELECT max(id) FROM audit_checkpoints), 0) + 1 "
        "OR NEW.tree_size <= coalesce((SELECT tree_size FROM audit_checkpoints ORDER BY id DESC LIMIT 1), -1)"
    ),
}
_POSTGRESQL_IN_SEQUENCE = {
    "audit_events": """
        DECLARE last_seq bigint; last_hash bytea;
        BEGIN
            SELECT seq, hash INTO last_seq, last_hash FROM audit_events ORDER BY seq DESC LIMIT 1;
            IF NEW.seq IS DISTINCT FROM coalesce(last_seq, 0) + 1
                    OR NEW.prev_hash IS DISTINCT FROM coalesce(last_hash, decode(repeat('00', 32), 'hex')) THEN
                RAISE EXCEPTION 'audit_events is append-only: events are appended in sequence';
            END IF;
            RETURN NEW;
        END""",
    "audit_checkpoints": """
        DECLARE last_id bigint; last_size bigint;
        BEGIN
            SELECT id, tree_size INTO last_id, last_size FROM audit_checkpoints ORDER BY id DESC LIMIT 1;
            IF NEW.id IS DISTINCT FROM coalesce(last_id, 0) + 1 OR NEW.tree_size <= coalesce(last_size, -1) THEN
                RAISE EXCEPTION 'audit_checkpoints is append-only: checkpoints are appended in sequence';
            END IF;
            RETURN NEW;
        END""",
}


def _append_in_sequence(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER {table}_append_in_sequence BEFORE INSERT ON {table} "
                   f"WHEN {_SQLITE_IN_SEQUENCE[table]} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are appended in sequence'); END")
        return
    op.execute(f"CREATE FUNCTION intake_{table}_in_sequence() RETURNS trigger LANGUAGE plpgsql AS $$"
               f"{_POSTGRESQL_IN_SEQUENCE[table]} $$")
    op.execute(f"CREATE TRIGGER {table}_append_in_sequence BEFORE INSERT ON {table} "
               f"FOR EACH ROW EXECUTE FUNCTION intake_{table}_in_sequence()")


def _drop_append_in_sequence(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER {table}_append_in_sequence")
        return
    op.execute(f"DROP TRIGGER {table}_append_in_sequence ON {table}")
    op.execute(f"DROP FUNCTION intake_{table}_in_sequence()")


def _old_table() -> sa.Table:
    return sa.table(
        "audit_events", sa.column("id", sa.BigInteger), sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("actor_id", sa.Integer), sa.column("actor_roles", sa.String), sa.column("action", sa.String),
        sa.column("target_type", sa.String), sa.column("target_ids", sa.JSON), sa.column("reason", sa.Text),
        sa.column("details", sa.JSON), sa.column("request_id", sa.String),
    )


def _new_table() -> sa.Table:
    return sa.table(
        "audit_events", sa.column("seq", sa.BigInteger), sa.column("occurred_at", sa.String),
        sa.column("actor_id", sa.Integer), sa.column("actor_roles", sa.String), sa.column("action", sa.String),
        sa.column("target_type", sa.String), sa.column("target_ids", sa.Text), sa.column("reason", sa.Text),
        sa.column("details", sa.Text), sa.column("request_id", sa.String), sa.column("entry", sa.Text),
        sa.column("prev_hash", sa.LargeBinary), sa.column("hash", sa.LargeBinary),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def upgrade() -> None:
    bind = op.get_bind()
    old = _old_table()
    rows = bind.execute(sa.select(old).order_by(old.c.id)).mappings().all()
    _allow_changes("audit_events")
    op.drop_table("audit_events")
    op.create_table('audit_events',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', sa.String(length=27), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_roles', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_ids', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('entry', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_events_seq_from_one')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_target_type'), ['target_type'], unique=False)
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('created_at', sa.String(length=27), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('frontier', sa.LargeBinary(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints'))
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_tree_size'), ['tree_size'], unique=False)

    previous = GENESIS
    chained = []
    for seq, row in enumerate(rows, start=1):
        values = {
            "seq": seq, "occurred_at": format_time(_utc(row["occurred_at"])), "actor_id": row["actor_id"],
            "actor_roles": row["actor_roles"] or "", "action": row["action"], "target_type": row["target_type"],
            "target_ids": canonical_json(row["target_ids"] or []), "reason": row["reason"],
            "details": canonical_json(row["details"] or {}), "request_id": row["request_id"],
        }
        entry = encode_event(**values)
        digest = event_hash(previous, entry)
        chained.append({**values, "entry": entry, "prev_hash": previous, "hash": digest})
        previous = digest
    if chained:
        bind.execute(sa.insert(_new_table()), chained)
    _refuse_changes("audit_events")
    _refuse_changes("audit_checkpoints")
    _append_in_sequence("audit_events")
    _append_in_sequence("audit_checkpoints")


def downgrade() -> None:
    bind = op.get_bind()
    new = _new_table()
    rows = bind.execute(sa.select(new).order_by(new.c.seq)).mappings().all()
    _drop_append_in_sequence("audit_checkpoints")
    _drop_append_in_sequence("audit_events")
    _allow_changes("audit_checkpoints")
    _allow_changes("audit_events")
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_tree_size'))
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_events')
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_roles', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_ids', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor_id'), ['actor_id'], unique=False)
    if rows:
        bind.execute(sa.insert(_old_table()), [
            {"id": row["seq"], **{c: row[c] for c in _OLD_COLUMNS if c not in ("occurred_at", "target_ids", "details")},
             "occurred_at": datetime.strptime(row["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
             "target_ids": json.loads(row["target_ids"]), "details": json.loads(row["details"])}
            for row in rows
        ])
        if bind.dialect.name == "postgresql":
            op.execute("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), "
                       "(SELECT max(id) FROM audit_events))")
    _refuse_changes("audit_events")

