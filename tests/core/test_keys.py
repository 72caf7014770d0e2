"""Tests for the sealed local keyring, written from the point of view of an operator or an attacker."""

from __future__ import annotations

import base64
import json
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from intake.core.keys import (
    PURPOSES,
    Keyring,
    KeyringError,
    UnknownKeyError,
    create_passphrase_file,
    read_passphrase,
)

N = 2**10
PASSPHRASE = "correct horse battery staple"
OTHER_PASSPHRASE = "a different long passphrase"
WRONG_MESSAGE = "wrong passphrase, or the keyring file was damaged or altered"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keyring.json"


@pytest.fixture
def keyring(path: Path) -> Keyring:
    return Keyring.create(path, PASSPHRASE, scrypt_n=N)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _header(p: Path) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(p.read_text("utf-8"))
    return header


def _write_header(p: Path, header: dict[str, Any]) -> None:
    p.write_text(json.dumps(header), "utf-8")


def _decrypt_independently(p: Path, passphrase: str) -> dict[str, Any]:
    """Open the file following only the documented format, to show the format is what it claims to be."""
    header = _header(p)
    kdf = header["kdf"]
    key = Scrypt(salt=base64.b64decode(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(
        passphrase.encode("utf-8")
    )
    aad_fields = {k: v for k, v in header.items() if k != "ciphertext"}
    aad = json.dumps(aad_fields, sort_keys=True, separators=(",", ":")).encode("ascii")
    plaintext = AESGCM(key).decrypt(
        base64.b64decode(header["nonce"]), base64.b64decode(header["ciphertext"]), aad
    )
    payload: dict[str, Any] = json.loads(plaintext)
    return payload


def _encodings(secret: bytes) -> list[bytes]:
    return [
        secret,
        base64.b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        base64.b32encode(secret).rstrip(b"="),
        secret.hex().encode(),
        secret.hex().upper().encode(),
    ]


# ---------------------------------------------------------------------------------------- round trip


def test_create_then_open_gives_the_same_keys(path: Path, keyring: Keyring) -> None:
    reopened = Keyring.open(path, PASSPHRASE)

    assert reopened.kek_versions == (1,)
    assert reopened.primary_kek_version == 1
    assert reopened.kek(1) == keyring.kek(1)
    assert len(reopened.kek(1)) == 32
    for purpose in PURPOSES:
        assert reopened.subkey(purpose) == keyring.subkey(purpose)


def test_file_follows_the_documented_format(path: Path, keyring: Keyring) -> None:
    header = _header(path)
    assert header["format"] == "intake-keyring"
    assert header["version"] == 1
    assert header["cipher"] == "AES-256-GCM"
    assert header["kdf"]["name"] == "scrypt"
    assert (header["kdf"]["n"], header["kdf"]["r"], header["kdf"]["p"]) == (N, 8, 1)
    assert len(base64.b64decode(header["kdf"]["salt"])) == 16
    assert len(base64.b64decode(header["nonce"])) == 12

    payload = _decrypt_independently(path, PASSPHRASE)
    assert payload["primary_kek"] == 1
    assert base64.b64decode(payload["keks"]["1"]) == keyring.kek(1)
    assert set(payload["seeds"]) == set(PURPOSES)
    assert all(len(base64.b64decode(s)) == 32 for s in payload["seeds"].values())
    assert "T" in payload["created"]


def test_two_keyrings_have_different_keys(tmp_path: Path) -> None:
    a = Keyring.create(tmp_path / "a.json", PASSPHRASE, scrypt_n=N)
    b = Keyring.create(tmp_path / "b.json", PASSPHRASE, scrypt_n=N)

    assert a.kek(1) != b.kek(1)
    assert a.subkey("blind-index") != b.subkey("blind-index")
    assert _header(tmp_path / "a.json")["kdf"]["salt"] != _header(tmp_path / "b.json")["kdf"]["salt"]


# ---------------------------------------------------------------------------------------- at rest


def test_created_file_is_readable_only_by_its_owner(path: Path, keyring: Keyring) -> None:
    assert _mode(path) == 0o600


def test_file_is_mode_0600_even_with_a_permissive_umask(path: Path) -> None:
    old = os.umask(0)
    try:
        Keyring.create(path, PASSPHRASE, scrypt_n=N)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_no_key_material_or_passphrase_in_the_file(path: Path, keyring: Keyring) -> None:
    content = path.read_bytes()
    payload = _decrypt_independently(path, PASSPHRASE)
    secrets_in_payload = [base64.b64decode(v) for v in payload["keks"].values()] + [
        base64.b64decode(v) for v in payload["seeds"].values()
    ]
    assert len(secrets_in_payload) == 1 + len(PURPOSES)
    for secret in [*secrets_in_payload, *(keyring.subkey(p) for p in PURPOSES)]:
        for form in _encodings(secret):
            assert form not in content
    assert PASSPHRASE.encode() not in content
    assert b"keks" not in content and b"seeds" not in content
    for purpose in PURPOSES:
        assert purpose.encode() not in content


def test_no_temporary_files_are_left_behind(path: Path, keyring: Keyring) -> None:
    keyring.save(path, OTHER_PASSPHRASE, scrypt_n=N)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# ---------------------------------------------------------------------------------------- opening failures


def test_wrong_passphrase_is_reported_clearly(path: Path, keyring: Keyring) -> None:
    with pytest.raises(KeyringError) as info:
        Keyring.open(path, "not the right passphrase")
    message = str(info.value)
    assert WRONG_MESSAGE in message
    assert str(path) in message
    assert "not the right passphrase" not in message


def test_missing_file_is_reported_as_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(KeyringError, match="does not exist") as info:
        Keyring.open(missing, PASSPHRASE)
    assert str(missing) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="directory"):
        Keyring.open(tmp_path, PASSPHRASE)


def test_empty_passphrase_is_refused_on_open(path: Path, keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="no passphrase"):
        Keyring.open(path, "")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff garbage \x89PNG",
        b"not json at all",
        b"[1, 2, 3]",
        b'{"format": "something-else", "version": 1}',
        b"\xef\xbb\xbf{",
    ],
    ids=["empty", "binary", "text", "json-list", "other-format", "bom"],
)
def test_garbage_is_not_a_keyring(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with pytest.raises(KeyringError, match="not an intake keyring or is damaged") as info:
        Keyring.open(path, PASSPHRASE)
    assert str(path) in str(info.value)


def test_truncated_file_is_damaged(path: Path, keyring: Keyring) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(KeyringError, match="not an intake keyring or is damaged"):
        Keyring.open(path, PASSPHRASE)


def test_truncated_ciphertext_fails(path: Path, keyring: Keyring) -> None:
    header = _header(path)
    header["ciphertext"] = base64.b64encode(base64.b64decode(header["ciphertext"])[:-1]).decode()
    _write_header(path, header)
    with pytest.raises(KeyringError, match=WRONG_MESSAGE):
        Keyring.open(path, PASSPHRASE)


def test_flipped_ciphertext_byte_is_detected(path: Path, keyring: Keyring) -> None:
    header = _header(path)
    ct = bytearray(base64.b64decode(header["ciphertext"]))
    ct[len(ct) // 2] ^= 0x01
    header["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    _write_header(path, header)
    with pytest.raises(KeyringError, match=WRONG_MESSAGE):
        Keyring.open(path, PASSPHRASE)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h["kdf"].__setitem__("n", 2**11),
        lambda h: h["kdf"].__setitem__("salt", base64.b64encode(b"\x00" * 16).decode()),
        lambda h: h.__setitem__("nonce", base64.b64encode(b"\x00" * 12).decode()),
    ],
    ids=["kdf-cost", "salt", "nonce"],
)
def test_modified_header_fails_to_open(path: Path, keyring: Keyring, tamper: Any) -> None:
    header = _header(path)
    tamper(header)
    _write_header(path, header)
    with pytest.raises(KeyringError, match=WRONG_MESSAGE):
        Keyring.open(path, PASSPHRASE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("format", "intake-keyring-v2"),
        ("version", 2),
        ("version", True),
        ("cipher", "AES-128-CBC"),
        ("nonce", "!!!not base64!!!"),
        ("nonce", base64.b64encode(b"short").decode()),
        ("ciphertext", "%%%"),
        ("ciphertext", 12),
        ("kdf", {"name": "pbkdf2"}),
        ("kdf", "scrypt"),
        ("extra", "field"),
    ],
)
def test_malformed_header_is_not_a_keyring(path: Path, keyring: Keyring, field: str, value: Any) -> None:
    header = _header(path)
    header[field] = value
    _write_header(path, header)
    with pytest.raises(KeyringError, match="not an intake keyring or is damaged"):
        Keyring.open(path, PASSPHRASE)


@pytest.mark.parametrize("field", ["format", "version", "kdf", "cipher", "nonce", "ciphertext"])
def test_missing_header_field_is_not_a_keyring(path: Path, keyring: Keyring, field: str) -> None:
    header = _header(path)
    del header[field]
    _write_header(path, header)
    with pytest.raises(KeyringError, match="not an intake keyring or is damaged"):
        Keyring.open(path, PASSPHRASE)


@pytest.mark.parametrize("n", [2**30, 3000, 0, -1, 2**5])
def test_unreasonable_scrypt_cost_is_refused_before_deriving(path: Path, keyring: Keyring, n: int) -> None:
    # A huge N would make the service allocate gigabytes before noticing the file is bad.
    header = _header(path)
    header["kdf"]["n"] = n
    _write_header(path, header)
    with pytest.raises(KeyringError, match="not an intake keyring or is damaged"):
        Keyring.open(path, PASSPHRASE)


def test_duplicate_header_fields_are_refused(path: Path, keyring: Keyring) -> None:
    # Even a harmless-looking repeat is refused: parsers disagree on which duplicate wins.
    field = '"cipher": "AES-256-GCM"'
    text = path.read_text("utf-8")
    assert field in text
    path.write_text(text.replace(field, f"{field}, {field}"), "utf-8")
    with pytest.raises(KeyringError, match="not an intake keyring or is damaged"):
        Keyring.open(path, PASSPHRASE)


def test_errors_never_contain_key_material(path: Path, keyring: Keyring) -> None:
    key_forms = [form.decode("latin-1") for form in _encodings(keyring.kek(1))]
    messages: list[str] = []
    for attempt in (
        lambda: Keyring.open(path, "wrong wrong wrong"),
        lambda: keyring.kek(99),
        lambda: keyring.subkey("nonsense"),
        lambda: keyring.retire_kek_version(1),
    ):
        with pytest.raises(KeyringError) as info:
            attempt()
        messages.append(str(info.value))
    for message in messages:
        assert all(form not in message for form in key_forms)


# ---------------------------------------------------------------------------------------- creation


def test_create_refuses_to_overwrite(path: Path, keyring: Keyring) -> None:
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="already exists") as info:
        Keyring.create(path, PASSPHRASE, scrypt_n=N)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert Keyring.open(path, PASSPHRASE).kek(1) == keyring.kek(1)


def test_create_refuses_to_follow_an_existing_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "keyring.json"
    link.symlink_to(target)
    with pytest.raises(KeyringError, match="already exists"):
        Keyring.create(link, PASSPHRASE, scrypt_n=N)
    assert not target.exists()


@pytest.mark.parametrize("weak", ["", "short", "elevenchars"])
def test_create_refuses_weak_passphrases(path: Path, weak: str) -> None:
    with pytest.raises(KeyringError, match="passphrase"):
        Keyring.create(path, weak, scrypt_n=N)
    assert not path.exists()


def test_twelve_character_passphrase_is_accepted(path: Path) -> None:
    Keyring.create(path, "twelve chars", scrypt_n=N)
    assert Keyring.open(path, "twelve chars").kek_versions == (1,)


def test_create_refuses_bad_scrypt_cost(path: Path) -> None:
    with pytest.raises(KeyringError, match="scrypt"):
        Keyring.create(path, PASSPHRASE, scrypt_n=1000)
    assert not path.exists()


def test_create_into_missing_directory_fails_clearly(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "keyring.json"
    with pytest.raises(KeyringError, match="Cannot write keyring"):
        Keyring.create(target, PASSPHRASE, scrypt_n=N)


def test_unicode_passphrase_in_other_normal_form_still_opens(path: Path) -> None:
    composed = "café-passphrase-\u00e9"
    decomposed = "cafe\u0301-passphrase-e\u0301"
    Keyring.create(path, composed, scrypt_n=N)
    assert Keyring.open(path, decomposed).kek_versions == (1,)


# ---------------------------------------------------------------------------------------- save


def test_change_passphrase_then_old_one_fails(path: Path, keyring: Keyring) -> None:
    old_header = _header(path)
    keyring.save(path, OTHER_PASSPHRASE)

    new_header = _header(path)
    assert new_header["kdf"]["salt"] != old_header["kdf"]["salt"]
    assert new_header["nonce"] != old_header["nonce"]
    assert new_header["kdf"]["n"] == N  # the cost is kept, not reset
    assert Keyring.open(path, OTHER_PASSPHRASE).kek(1) == keyring.kek(1)
    with pytest.raises(KeyringError, match=WRONG_MESSAGE):
        Keyring.open(path, PASSPHRASE)


def test_save_with_same_passphrase_uses_fresh_salt_and_nonce(path: Path, keyring: Keyring) -> None:
    before = _header(path)
    keyring.save(path, PASSPHRASE)
    after = _header(path)
    assert after["kdf"]["salt"] != before["kdf"]["salt"]
    assert after["nonce"] != before["nonce"]
    assert after["ciphertext"] != before["ciphertext"]


def test_save_restores_mode_0600(path: Path, keyring: Keyring) -> None:
    path.chmod(0o644)
    keyring.save(path, PASSPHRASE)
    assert _mode(path) == 0o600


def test_save_can_raise_the_scrypt_cost(path: Path, keyring: Keyring) -> None:
    keyring.save(path, PASSPHRASE, scrypt_n=2**11)
    assert _header(path)["kdf"]["n"] == 2**11
    assert Keyring.open(path, PASSPHRASE).scrypt_n == 2**11


def test_save_refuses_a_weak_passphrase_and_keeps_the_file(path: Path, keyring: Keyring) -> None:
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="shorter than 12"):
        keyring.save(path, "short")
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------- KEK versions


def test_add_kek_version_becomes_primary_and_survives_save(path: Path, keyring: Keyring) -> None:
    first = keyring.kek(1)
    version = keyring.add_kek_version()

    assert version == 2
    assert keyring.primary_kek_version == 2
    assert keyring.kek_versions == (1, 2)
    assert keyring.kek(2) != first
    assert len(keyring.kek(2)) == 32
    # Only memory changed until the caller saves.
    assert Keyring.open(path, PASSPHRASE).kek_versions == (1,)

    keyring.save(path, PASSPHRASE)
    reopened = Keyring.open(path, PASSPHRASE)
    assert reopened.kek_versions == (1, 2)
    assert reopened.primary_kek_version == 2
    assert reopened.kek(1) == first
    assert reopened.kek(2) == keyring.kek(2)


def test_retire_old_kek_version(path: Path, keyring: Keyring) -> None:
    keyring.add_kek_version()
    keyring.retire_kek_version(1)
    keyring.save(path, PASSPHRASE)

    reopened = Keyring.open(path, PASSPHRASE)
    assert reopened.kek_versions == (2,)
    with pytest.raises(KeyringError, match="no KEK version 1"):
        reopened.kek(1)
    # Retired version numbers are never reused.
    assert reopened.add_kek_version() == 3


def test_cannot_retire_primary_kek(keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="primary"):
        keyring.retire_kek_version(1)
    assert keyring.kek_versions == (1,)


def test_unknown_kek_version(keyring: Keyring) -> None:
    with pytest.raises(UnknownKeyError, match="no KEK version 7"):
        keyring.kek(7)
    with pytest.raises(KeyError):
        keyring.retire_kek_version(7)


# ---------------------------------------------------------------------------------------- subkeys


def test_subkeys_differ_per_purpose(keyring: Keyring) -> None:
    keys = {purpose: keyring.subkey(purpose) for purpose in PURPOSES}
    assert len(set(keys.values())) == len(PURPOSES)
    assert all(len(k) == 32 for k in keys.values())
    assert keyring.kek(1) not in keys.values()


def test_subkeys_differ_per_label(keyring: Keyring) -> None:
    a = keyring.subkey("blind-index", label="email")
    b = keyring.subkey("blind-index", label="phone")
    c = keyring.subkey("blind-index")
    assert len({a, b, c}) == 3


def test_subkeys_are_stable_across_open_and_save(path: Path, keyring: Keyring) -> None:
    expected = keyring.subkey("blind-index", label="email")
    assert Keyring.open(path, PASSPHRASE).subkey("blind-index", label="email") == expected
    keyring.add_kek_version()
    keyring.save(path, OTHER_PASSPHRASE)
    assert Keyring.open(path, OTHER_PASSPHRASE).subkey("blind-index", label="email") == expected


def test_subkey_length(keyring: Keyring) -> None:
    assert len(keyring.subkey("session-secret", length=64)) == 64
    assert len(keyring.subkey("session-secret", length=16)) == 16
    with pytest.raises(ValueError, match="length"):
        keyring.subkey("session-secret", length=0)


def test_unknown_purpose_is_refused(keyring: Keyring) -> None:
    with pytest.raises(UnknownKeyError, match="Unknown subkey purpose"):
        keyring.subkey("encryption")
    with pytest.raises(KeyError):
        keyring.subkey("")


def test_keyring_missing_a_seed_refuses_until_seeds_are_added(path: Path) -> None:
    keyring = Keyring.create(path, PASSPHRASE, scrypt_n=N)
    del keyring._seeds["api-tokens"]  # as if written by an older release
    keyring.save(path, PASSPHRASE)

    older = Keyring.open(path, PASSPHRASE)
    with pytest.raises(KeyringError, match="no seed for purpose 'api-tokens'"):
        older.subkey("api-tokens")
    assert older.add_missing_seeds() == ("api-tokens",)
    older.save(path, PASSPHRASE)
    expected = older.subkey("api-tokens")
    assert Keyring.open(path, PASSPHRASE).subkey("api-tokens") == expected
    assert older.add_missing_seeds() == ()


# ---------------------------------------------------------------------------------------- in memory


def test_repr_shows_no_key_material(keyring: Keyring) -> None:
    keyring.add_kek_version()
    text = repr(keyring)
    assert "Keyring" in text
    for version in keyring.kek_versions:
        for form in _encodings(keyring.kek(version)):
            assert form.decode("latin-1") not in text
    assert str(keyring.kek(1)) not in text


def test_keyring_cannot_be_pickled(keyring: Keyring) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(keyring)


# ---------------------------------------------------------------------------------------- read_passphrase


def test_read_passphrase_from_environment() -> None:
    assert read_passphrase({"INTAKE_KEYRING_PASSPHRASE": PASSPHRASE}) == PASSPHRASE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PASSPHRASE + "\n", PASSPHRASE),
        (PASSPHRASE, PASSPHRASE),
        (PASSPHRASE + "\r\n", PASSPHRASE),
        (PASSPHRASE + "\n\n", PASSPHRASE + "\n"),
        (" " + PASSPHRASE + " \n", " " + PASSPHRASE + " "),
    ],
    ids=["newline", "bare", "crlf", "only-one-newline", "spaces-kept"],
)
def test_read_passphrase_from_file(tmp_path: Path, content: str, expected: str) -> None:
    file = tmp_path / "passphrase"
    file.write_bytes(content.encode("utf-8"))
    assert read_passphrase({"INTAKE_KEYRING_PASSPHRASE_FILE": str(file)}) == expected


def test_read_passphrase_both_set_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "passphrase"
    file.write_text(PASSPHRASE, "utf-8")
    environ = {"INTAKE_KEYRING_PASSPHRASE": PASSPHRASE, "INTAKE_KEYRING_PASSPHRASE_FILE": str(file)}
    with pytest.raises(KeyringError) as info:
        read_passphrase(environ)
    message = str(info.value)
    assert "INTAKE_KEYRING_PASSPHRASE " in message
    assert "INTAKE_KEYRING_PASSPHRASE_FILE" in message
    assert PASSPHRASE not in message


def test_read_passphrase_neither_set_says_what_to_do() -> None:
    with pytest.raises(KeyringError) as info:
        read_passphrase({"PATH": "/usr/bin"})
    message = str(info.value)
    assert "set INTAKE_KEYRING_PASSPHRASE_FILE" in message
    assert "INTAKE_KEYRING_PASSPHRASE." in message


def test_read_passphrase_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(KeyringError, match="does not exist") as info:
        read_passphrase({"INTAKE_KEYRING_PASSPHRASE_FILE": str(missing)})
    assert str(missing) in str(info.value)


def test_read_passphrase_unreadable_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="Cannot read passphrase file") as info:
        read_passphrase({"INTAKE_KEYRING_PASSPHRASE_FILE": str(tmp_path)})  # a directory
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "environ",
    [
        {"INTAKE_KEYRING_PASSPHRASE": ""},
        {"INTAKE_KEYRING_PASSPHRASE_FILE": ""},
    ],
)
def test_read_passphrase_empty_variables_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(KeyringError, match="empty"):
        read_passphrase(environ)


@pytest.mark.parametrize("content", [b"", b"\n", b"\xff\xfe\xfa"], ids=["empty", "newline", "not-utf8"])
def test_read_passphrase_bad_file_contents(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "passphrase"
    file.write_bytes(content)
    with pytest.raises(KeyringError) as info:
        read_passphrase({"INTAKE_KEYRING_PASSPHRASE_FILE": str(file)})
    assert str(file) in str(info.value)


# ---------------------------------------------------------------------------------------- passphrase files


def test_create_passphrase_file(tmp_path: Path) -> None:
    file = tmp_path / "passphrase"
    passphrase = create_passphrase_file(file)

    assert _mode(file) == 0o600
    assert len(passphrase) >= 43  # 32 random bytes, URL-safe base64
    assert read_passphrase({"INTAKE_KEYRING_PASSPHRASE_FILE": str(file)}) == passphrase
    assert create_passphrase_file(tmp_path / "other") != passphrase


def test_create_passphrase_file_refuses_to_overwrite(tmp_path: Path) -> None:
    file = tmp_path / "passphrase"
    file.write_text("existing secret\n", "utf-8")
    with pytest.raises(KeyringError, match="already exists") as info:
        create_passphrase_file(file)
    assert str(file) in str(info.value)
    assert file.read_text("utf-8") == "existing secret\n"


def test_generated_passphrase_seals_a_keyring_end_to_end(tmp_path: Path) -> None:
    file = tmp_path / "passphrase"
    create_passphrase_file(file)
    environ = {"INTAKE_KEYRING_PASSPHRASE_FILE": str(file)}
    keyring_path = tmp_path / "keyring.json"

    created = Keyring.create(keyring_path, read_passphrase(environ), scrypt_n=N)
    opened = Keyring.open(keyring_path, read_passphrase(environ))
    assert opened.kek(1) == created.kek(1)
    assert file.read_text("utf-8").strip().encode() not in keyring_path.read_bytes()
