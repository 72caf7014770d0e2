"""The auditor's pages and API: search the audit log, verify it, see who has seen a record and export that
record's history with inclusion proofs, read the signed checkpoints.

Everything here needs `READ_AUDIT_LOG` and shows only what the audit tables hold (identifiers, actions, field
names) and usernames, never testimony content. Reading the log is itself audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from intake.core.audit import service
from intake.core.audit.verify import Report
from intake.core.db import db

# How a record is named in an address: an event's target type, and one of its target ids (a number or a
# pseudonym). Anything else is not a record of this service.
RECORD_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_record_address(target_type: str, target_id: str) -> bool:
    return bool(RECORD_TYPE.fullmatch(target_type) and RECORD_ID.fullmatch(target_id))


def record_target_ids(target_id: str) -> list[int | str]:
    """The target ids an audit event about this record carries: a number as a number, as the log stores it."""
    if target_id.isascii() and target_id.isdigit() and str(int(target_id)) == target_id:
        return [int(target_id)]
    return [target_id]


@dataclass(frozen=True)
class _Auditor:
    id: int
    role_names: tuple[str, ...]


def verify_now(account: Any) -> Report:
    """Verify the whole log for `account` and record that they did.

    Reading a large log takes a while, so the request's transaction is ended first: on SQLite a POST holds the
    write lock from its start, and every other writer would wait for the verification. The event is recorded in
    the transaction that begins next, and commits with the request.
    """
    auditor = _Auditor(account.id, tuple(account.role_names))
    db.session.rollback()
    report = service.verify()
    service.record_verification(report, actor=auditor)
    return report
