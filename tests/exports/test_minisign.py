"""Minisign-compatible signatures: what a recipient checking a bundle with the `minisign` tool relies on.

Pure tests (no application, no database). The interoperability tests use Debian's `minisign`; they skip when it is
not installed, unless PYTEST_REQUIRE names it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intake.exports.minisign import (
    MAX_TRUSTED_COMMENT,
    MAX_UNTRUSTED_COMMENT,
    PublicKey,
    Signature,
    SignatureError,
    SigningKey,
    public_key_file,
    public_key_line,
    sign,
    verify,
)
from tests.conftest import missing

SEED = bytes(range(32))
DATA = b"manifest: one entry per file, each with its SHA-256 and size\n" * 3
COMMENT = "bundle:5f0c8a86 created:2025-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.from_seed(SEED)


@pytest.fixture(scope="module")
def signature(key: SigningKey) -> str:
    return sign(key, DATA, trusted_comment=COMMENT, untrusted_comment="case file manifest")


def _minisign() -> str:
    path = shutil.which("minisign")
    if path is None:
        missing("minisign", "there is no minisign executable on PATH (Debian package minisign)")
    assert path is not None
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_minisign(), *args], capture_output=True, text=True, timeout=60, check=False)  # noqa: S603


def _legacy_signature(seed: bytes, key_id: bytes, data: bytes, comment: str) -> str:
    """A signature in minisign's legacy format ("Ed": the data itself is signed), made by hand."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    sig = private.sign(data)
    global_sig = private.sign(sig + comment.encode())
    return (f"untrusted comment: legacy\n{base64.b64encode(b'Ed' + key_id + sig).decode()}\n"
            f"trusted comment: {comment}\n{base64.b64encode(global_sig).decode()}\n")


# ---------------------------------------------------------------------------------------------------------------
# Keys


def test_a_seed_always_gives_the_same_public_key_file(key: SigningKey) -> None:
    again = SigningKey.from_seed(SEED)
    assert public_key_file(again) == public_key_file(key)
    assert public_key_file(SigningKey.from_seed(bytes(32))) != public_key_file(key)


def test_the_public_key_file_has_minisign_layout(key: SigningKey) -> None:
    text = public_key_file(key)
    comment, line, end = text.split("\n")
    assert end == ""
    assert comment == f"untrusted comment: minisign public key {key.key_id_hex}"
    assert line == public_key_line(key)
    blob = base64.b64decode(line)
    public_bytes = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    assert blob == b"Ed" + key.key_id + public_bytes
    assert key.key_id == hashlib.blake2b(public_bytes).digest()[:8]
    # Minisign shows the key id as a little-endian 64-bit number in upper-case hexadecimal.
    assert key.key_id_hex == format(int.from_bytes(key.key_id, "little"), "X")


def test_a_public_key_parses_from_the_file_or_the_line(key: SigningKey) -> None:
    assert PublicKey.parse(public_key_file(key)) == key.public_key
    assert PublicKey.parse(public_key_line(key)) == key.public_key
    assert PublicKey.parse("\n" + public_key_line(key) + "\r\n\n") == key.public_key


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_a_seed_is_32_bytes(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SigningKey.from_seed(seed)


@pytest.mark.parametrize("text", [
    "",
    "not base64 at all!",
    base64.b64encode(b"Ed" + bytes(39)).decode(),  # one byte short
    base64.b64encode(b"Ed" + bytes(41)).decode(),  # one byte too many
    base64.b64encode(b"XX" + bytes(40)).decode(),  # another algorithm
    "untrusted comment: a\nuntrusted comment: b\n" + base64.b64encode(b"Ed" + bytes(40)).decode(),
])
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(SignatureError):
        PublicKey.parse(text)


def test_a_signing_key_does_not_show_its_secret(key: SigningKey) -> None:
    assert SEED.hex() not in repr(key)
    assert key.key_id_hex in repr(key)


# ---------------------------------------------------------------------------------------------------------------
# Signing and verifying


def test_a_signature_verifies_and_returns_its_trusted_comment(key: SigningKey, signature: str) -> None:
    assert verify(public_key_file(key), signature, DATA) == COMMENT
    assert verify(public_key_line(key), signature, DATA) == COMMENT
    assert verify(key.public_key, signature, [DATA]) == COMMENT


def test_the_signature_has_minisign_layout(key: SigningKey, signature: str) -> None:
    lines = signature.split("\n")
    assert len(lines) == 5 and lines[4] == ""
    assert lines[0] == "untrusted comment: case file manifest"
    assert lines[2] == f"trusted comment: {COMMENT}"
    blob = base64.b64decode(lines[1])
    assert blob[:2] == b"ED" and blob[2:10] == key.key_id and len(blob) == 74
    assert len(base64.b64decode(lines[3])) == 64
    parsed = Signature.parse(signature)
    assert parsed.algorithm == b"ED" and parsed.trusted_comment == COMMENT


def test_signing_a_stream_of_chunks_equals_signing_the_whole(key: SigningKey, signature: str) -> None:
    chunks = (DATA[i:i + 7] for i in range(0, len(DATA), 7))
    assert sign(key, chunks, trusted_comment=COMMENT, untrusted_comment="case file manifest") == signature
    assert verify(public_key_line(key), signature, iter([DATA[:10], b"", DATA[10:]])) == COMMENT


def test_the_untrusted_comment_defaults_to_minisigns(key: SigningKey) -> None:
    text = sign(key, b"x", trusted_comment="t")
    assert text.startswith("untrusted comment: signature from minisign secret key\n")


def test_every_changed_byte_of_the_data_is_refused(key: SigningKey, signature: str) -> None:
    line = public_key_line(key)
    for i in range(len(DATA)):
        tampered = bytearray(DATA)
        tampered[i] ^= 0x01
        with pytest.raises(SignatureError, match="does not match the data"):
            verify(line, signature, bytes(tampered))
    for tampered_data in (DATA + b"\n", DATA[:-1], b"", DATA[1:]):
        with pytest.raises(SignatureError, match="does not match the data"):
            verify(line, signature, tampered_data)


def test_every_changed_character_of_the_signature_or_trusted_comment_is_refused(
        key: SigningKey, signature: str) -> None:
    line = public_key_line(key)
    start = signature.index("\n") + 1  # the untrusted comment, the first line, is not signed
    end = len(signature) - 1  # the final newline
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    checked = 0
    for i in range(start, end):
        if signature[i] == "\n":
            continue
        for replacement in {alphabet[(alphabet.find(signature[i]) + 1) % 64], "x" if signature[i] != "x" else "y"}:
            tampered = signature[:i] + replacement + signature[i + 1:]
            with pytest.raises(SignatureError):
                verify(line, tampered, DATA)
            checked += 1
    assert checked > 2 * 200


def test_the_untrusted_comment_is_not_signed(key: SigningKey, signature: str) -> None:
    changed = re.sub("^untrusted comment: .*$", "untrusted comment: anything", signature, count=1, flags=re.M)
    assert verify(public_key_line(key), changed, DATA) == COMMENT


def test_a_changed_trusted_comment_is_named_as_such(key: SigningKey, signature: str) -> None:
    changed = signature.replace(COMMENT, COMMENT + " extended")
    with pytest.raises(SignatureError, match="trusted comment"):
        verify(public_key_line(key), changed, DATA)


def test_a_signature_from_another_key_is_refused_naming_both_keys(key: SigningKey, signature: str) -> None:
    other = SigningKey.from_seed(bytes(32))
    with pytest.raises(SignatureError, match=f"{key.key_id_hex}.*{other.key_id_hex}"):
        verify(public_key_line(other), signature, DATA)


def test_a_key_claiming_the_same_key_id_does_not_verify(key: SigningKey, signature: str) -> None:
    impostor = PublicKey(key_id=key.key_id, public_bytes=SigningKey.from_seed(bytes(32)).public_key.public_bytes)
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(impostor, signature, DATA)


@pytest.mark.parametrize("mangle", [
    lambda s: "",
    lambda s: "\n".join(s.split("\n")[:3]),  # no comment signature
    lambda s: s + "one line too many\n",
    lambda s: s.replace("untrusted comment: ", "comment: ", 1),
    lambda s: s.replace("\ntrusted comment: ", "\ntrusted: "),
    lambda s: s.replace("\ntrusted comment: ", "\nTrusted comment: "),
    lambda s: "\n".join([s.split("\n")[0], " " + s.split("\n")[1], *s.split("\n")[2:]]),
    lambda s: "\n".join([s.split("\n")[0], base64.b64encode(b"EX" + base64.b64decode(s.split("\n")[1])[2:]).decode(),
                         *s.split("\n")[2:]]),
])
def test_malformed_signatures_are_refused(key: SigningKey, signature: str, mangle: Callable[[str], str]) -> None:
    with pytest.raises(SignatureError):
        verify(public_key_line(key), mangle(signature), DATA)


def test_a_signature_with_windows_line_endings_still_verifies(key: SigningKey, signature: str) -> None:
    assert verify(public_key_line(key), signature.replace("\n", "\r\n"), DATA) == COMMENT


def test_legacy_signatures_verify(key: SigningKey) -> None:
    legacy = _legacy_signature(SEED, key.key_id, DATA, COMMENT)
    assert verify(public_key_line(key), legacy, [DATA[:5], DATA[5:]]) == COMMENT
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(public_key_line(key), legacy, DATA + b"!")


@pytest.mark.parametrize("comment", ["two\nlines", "carriage\rreturn", "nul\0byte"])
def test_comments_are_single_lines(key: SigningKey, comment: str) -> None:
    with pytest.raises(ValueError, match="single line"):
        sign(key, DATA, trusted_comment=comment)
    with pytest.raises(ValueError, match="single line"):
        sign(key, DATA, trusted_comment="fine", untrusted_comment=comment)


def test_comments_longer_than_minisign_reads_are_refused(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="longer"):
        sign(key, DATA, trusted_comment="t" * (MAX_TRUSTED_COMMENT + 1))
    with pytest.raises(ValueError, match="longer"):
        sign(key, DATA, trusted_comment="é" * (MAX_TRUSTED_COMMENT // 2 + 1))  # counted in UTF-8 bytes
    with pytest.raises(ValueError, match="longer"):
        sign(key, DATA, trusted_comment="t", untrusted_comment="u" * (MAX_UNTRUSTED_COMMENT + 1))


# ---------------------------------------------------------------------------------------------------------------
# Interoperability with minisign 0.11


@pytest.fixture()
def signed_file(tmp_path: Path, key: SigningKey) -> tuple[Path, Path, Path]:
    data = tmp_path / "manifest.json"
    data.write_bytes(DATA)
    sig = tmp_path / "manifest.json.minisig"
    sig.write_text(sign(key, DATA, trusted_comment=COMMENT + "\tnon-ASCII: café"), encoding="utf-8")
    pub = tmp_path / "minisign.pub"
    pub.write_text(public_key_file(key), encoding="utf-8")
    return data, sig, pub


def test_minisign_verifies_our_signature_with_the_key_line(signed_file: tuple[Path, Path, Path],
                                                           key: SigningKey) -> None:
    data, _sig, _pub = signed_file
    result = _run("-V", "-m", str(data), "-P", public_key_line(key))
    assert result.returncode == 0, result.stderr
    assert f"Trusted comment: {COMMENT}\tnon-ASCII: café" in result.stdout


def test_minisign_verifies_our_signature_with_the_key_file(signed_file: tuple[Path, Path, Path]) -> None:
    data, sig, pub = signed_file
    result = _run("-V", "-m", str(data), "-x", str(sig), "-p", str(pub), "-Q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{COMMENT}\tnon-ASCII: café\n"


def test_minisign_refuses_a_tampered_file(signed_file: tuple[Path, Path, Path]) -> None:
    data, _sig, pub = signed_file
    data.write_bytes(DATA.replace(b"SHA-256", b"SHA-257"))
    result = _run("-V", "-m", str(data), "-p", str(pub))
    assert result.returncode != 0
    assert "verification failed" in result.stderr


def test_minisign_refuses_a_tampered_trusted_comment(signed_file: tuple[Path, Path, Path]) -> None:
    data, sig, pub = signed_file
    sig.write_text(sig.read_text(encoding="utf-8").replace("bundle:", "bundle:0"), encoding="utf-8")
    result = _run("-V", "-m", str(data), "-p", str(pub))
    assert result.returncode != 0
    assert "Comment signature verification failed" in result.stderr


def test_minisign_accepts_the_longest_trusted_comment_we_allow(tmp_path: Path, key: SigningKey) -> None:
    data = tmp_path / "f"
    data.write_bytes(DATA)
    comment = "c" * MAX_TRUSTED_COMMENT
    (tmp_path / "f.minisig").write_text(sign(key, DATA, trusted_comment=comment,
                                             untrusted_comment="u" * MAX_UNTRUSTED_COMMENT), encoding="utf-8")
    result = _run("-V", "-m", str(data), "-P", public_key_line(key), "-Q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == comment + "\n"


def test_minisign_reports_our_key_ids_as_we_show_them(signed_file: tuple[Path, Path, Path]) -> None:
    data, sig, _pub = signed_file
    other = SigningKey.from_seed(bytes(32))
    result = _run("-V", "-m", str(data), "-x", str(sig), "-P", public_key_line(other))
    assert result.returncode != 0
    ids = re.findall(r"key id [^\n]*? is ([0-9A-F]+)", result.stderr)
    assert ids == [SigningKey.from_seed(SEED).key_id_hex, other.key_id_hex]


@pytest.fixture()
def minisign_keys(tmp_path: Path) -> tuple[Path, Path]:
    pub, sec = tmp_path / "tool.pub", tmp_path / "tool.key"
    result = _run("-G", "-W", "-p", str(pub), "-s", str(sec))
    assert result.returncode == 0, result.stderr
    return pub, sec


@pytest.mark.parametrize("legacy", [False, True], ids=["prehashed", "legacy"])
def test_signatures_made_by_minisign_verify_here(tmp_path: Path, minisign_keys: tuple[Path, Path],
                                                 legacy: bool) -> None:
    pub, sec = minisign_keys
    data = tmp_path / "bundle.tar.age"
    data.write_bytes(DATA * 1000)
    result = _run("-S", *(["-l"] if legacy else []), "-s", str(sec), "-m", str(data), "-t", "made by minisign é")
    assert result.returncode == 0, result.stderr
    signature = (tmp_path / "bundle.tar.age.minisig").read_text(encoding="utf-8")
    assert Signature.parse(signature).algorithm == (b"Ed" if legacy else b"ED")
    public = pub.read_text(encoding="utf-8")
    chunks = [DATA] * 1000
    assert verify(public, signature, chunks) == "made by minisign é"
    assert verify(public.splitlines()[1], signature, DATA * 1000) == "made by minisign é"
    # The key id minisign printed in the public key's comment is the one we read from the key.
    assert public.splitlines()[0] == f"untrusted comment: minisign public key {PublicKey.parse(public).key_id_hex}"
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(public, signature, [DATA] * 999)


def test_our_verify_refuses_minisigns_signature_of_another_file(tmp_path: Path,
                                                                minisign_keys: tuple[Path, Path]) -> None:
    pub, sec = minisign_keys
    data = tmp_path / "a"
    data.write_bytes(b"first")
    assert _run("-S", "-s", str(sec), "-m", str(data)).returncode == 0
    signature = (tmp_path / "a.minisig").read_text(encoding="utf-8")
    with pytest.raises(SignatureError):
        verify(pub.read_text(encoding="utf-8"), signature, b"second")
