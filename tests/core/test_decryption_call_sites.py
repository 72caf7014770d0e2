"""Invariant 4: testimony is read through `intake.core.access` only. This walks the source of every module of the
application and lists each call of a function that decrypts; a call anywhere but in the crypto layer, the access
function, or one of the places listed below with the reason it may decrypt there, fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import intake

PACKAGE = Path(intake.__file__).resolve().parent
DECRYPTING = {"open_value", "open_field", "open_stream", "open_data_key", "read_identity", "read_narrative",
              "read_attachment_details", "attachment_content", "unwrap_data_key"}
# Modules where decryption is the point: the crypto layer itself and the access function.
HOME = ("core/crypto/", "core/access/")
# Each other place that decrypts, by module and function, and why it is not a read of testimony by a person.
ALLOWED: dict[tuple[str, str], str] = {
    ("accounts/operations.py", "_totp_secret"): "the account's own two-factor seed, to check a code",
    ("backup/operations.py", "decrypt_sample"):
        "checks that the keyring opens a restored backup's data keys; the plaintext is counted, never shown",
    ("identities/operations.py", "read_identity"): "the vault's own accessor, used by the duplicate check below",
    ("identities/operations.py", "possible_previous_interviews"):
        "confirms blind-index candidates; returns dates and teams, never an identity",
    ("interviews/operations.py", "_details"): "merges a change into the interview details before sealing them again",
    ("testimonies/operations.py", "read_narrative"): "the testimony's own accessor, for tests and the CLI",
    ("testimonies/operations.py", "read_attachment_details"): "the attachment's own accessor",
    ("testimonies/operations.py", "attachment_content"): "the attachment's own stream accessor",
    ("testimonies/operations.py", "store_attachment"): "opens the key to encrypt, never to read",
}


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def decrypting_calls() -> list[tuple[str, str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module.startswith(HOME):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and _called_name(node) in DECRYPTING:
                    found.append((module, function.name, node.lineno, _called_name(node) or ""))
    return found


def test_only_the_access_function_and_the_listed_places_decrypt() -> None:
    unexpected = [call for call in decrypting_calls() if (call[0], call[1]) not in ALLOWED]
    assert unexpected == [], "decryption outside intake.core.access: read through open_record instead"


def test_the_list_of_places_is_not_stale() -> None:
    seen = {(module, function) for module, function, _line, _name in decrypting_calls()}
    assert set(ALLOWED) <= seen, f"listed but no longer decrypting: {sorted(set(ALLOWED) - seen)}"


def test_the_walk_sees_calls() -> None:
    assert any(name == "open_value" for _m, _f, _l, name in decrypting_calls())
