"""Signed notes and checkpoints: the Go package's vectors, round trips, and every way a note can be wrong."""

from __future__ import annotations

import base64
import hashlib

import pytest

from intake.core.audit.note import (
    MAX_SIGNATURES,
    Checkpoint,
    MalformedNote,
    Signature,
    Signer,
    UnverifiedNote,
    Verifier,
    key_hash,
    open_checkpoint,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
)

# From the documentation of golang.org/x/mod/sumdb/note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG_LINE = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG_LINE
GO_ENOCH_LINE = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

# From c2sp.org/tlog-checkpoint (its signing key is not published).
C2SP_CHECKPOINT_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
C2SP_CHECKPOINT_NOTE = (
    C2SP_CHECKPOINT_TEXT
    + "\n— example.com/behind-the-sofa "
    + "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

ORIGIN = "example.org/intake-audit"
ROOT = hashlib.sha256(b"root").digest()
assert base64.urlsafe_b64encode(ROOT) != base64.b64encode(ROOT)  # the URL-safe spelling test needs a '+' or '/'


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(ORIGIN, bytes(range(32)))


@pytest.fixture(scope="module")
def other() -> Signer:
    return Signer("example.org/other", bytes(range(32, 64)))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def line(name: str, raw: bytes) -> str:
    return f"— {name} {b64(raw)}\n"


# ---------------------------------------------------------------------------------------------------------------
# The Go package's vectors


def test_go_verifier_key_parses_and_round_trips() -> None:
    verifier = Verifier.from_string(GO_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_hash == 0xC74F20A3
    assert key_hash(verifier.name, verifier.public_key) == 0xC74F20A3
    assert verifier.to_string() == GO_VKEY


def test_go_note_opens() -> None:
    text, sigs = open_note(GO_NOTE, [Verifier.from_string(GO_VKEY)])
    assert text == GO_TEXT
    assert [(s.name, s.key_hash, len(s.signature)) for s in sigs] == [("PeterNeumann", 0xC74F20A3, 64)]
    assert sigs[0].to_line() == GO_SIG_LINE


def test_go_signer_key_reproduces_the_signature() -> None:
    signer = Signer.from_string(GO_SKEY)
    assert signer.verifier == Verifier.from_string(GO_VKEY)
    assert signer.private_key_string() == GO_SKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE


def test_go_doubly_signed_note_opens_with_the_known_key_only() -> None:
    text, sigs = open_note(GO_NOTE + GO_ENOCH_LINE, [Verifier.from_string(GO_VKEY)])
    assert text == GO_TEXT
    assert [s.name for s in sigs] == ["PeterNeumann"]


def test_go_doubly_signed_note_without_the_known_key_names_both() -> None:
    with pytest.raises(UnverifiedNote) as caught:
        open_note(GO_NOTE + GO_ENOCH_LINE, [])
    assert caught.value.invalid is False
    names = [name for name, _ in caught.value.unknown_keys]
    assert names == ["PeterNeumann", "EnochRoot"]
    assert caught.value.unknown_keys[0][1] == 0xC74F20A3


# ---------------------------------------------------------------------------------------------------------------
# Keys


def test_signer_verifier_and_repr(signer: Signer) -> None:
    assert signer.name == ORIGIN
    assert signer.key_hash == key_hash(ORIGIN, signer.verifier.public_key)
    assert Verifier.from_string(signer.verifier.to_string()) == signer.verifier
    assert Signer.from_string(signer.private_key_string()).verifier == signer.verifier
    assert "PRIVATE" not in repr(signer)
    assert b64(bytes(range(32))) not in repr(signer)
    assert f"{signer.key_hash:08x}" in repr(signer)


def test_sign_and_verify(signer: Signer, other: Signer) -> None:
    sig = signer.sign(b"text\n")
    assert len(sig) == 64
    assert signer.verifier.verify(b"text\n", sig)
    assert not signer.verifier.verify(b"text!\n", sig)
    assert not other.verifier.verify(b"text\n", sig)
    assert not signer.verifier.verify(b"text\n", sig[:-1])
    assert not signer.verifier.verify(b"text\n", sig + b"\x00")


def test_verifier_key_hex_is_case_insensitive() -> None:
    name, hash_hex, key = GO_VKEY.split("+", 2)
    assert Verifier.from_string(f"{name}+{hash_hex.upper()}+{key}") == Verifier.from_string(GO_VKEY)


def _vkey(name: str, key: bytes, hash_value: int | None = None) -> str:
    value = key_hash(name, key[1:]) if hash_value is None else hash_value
    return f"{name}+{value:08x}+{b64(key)}"


GO_KEY = base64.b64decode(GO_VKEY.split("+", 2)[2])


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("", "form"),
        ("PeterNeumann", "form"),
        ("PeterNeumann+c74f20a3", "form"),
        ("+c74f20a3+" + b64(GO_KEY), "non-empty"),
        ("Peter Neumann+c74f20a3+" + b64(GO_KEY), "spaces"),
        ("Peter\u00a0Neumann+c74f20a3+" + b64(GO_KEY), "spaces"),
        ("PeterNeumann+c74f20a+" + b64(GO_KEY), "8 hexadecimal"),
        ("PeterNeumann+c74f20a30+" + b64(GO_KEY), "8 hexadecimal"),
        ("PeterNeumann+0xc74f20+" + b64(GO_KEY), "8 hexadecimal"),
        ("PeterNeumann+c74f_20a+" + b64(GO_KEY), "8 hexadecimal"),
        ("PeterNeumann+c74f20zz+" + b64(GO_KEY), "8 hexadecimal"),
        ("PeterNeumann+c74f20a4+" + b64(GO_KEY), "does not match"),
        ("PeterNeumann+c74f20a3+" + b64(GO_KEY)[:-1], "base64"),
        ("PeterNeumann+c74f20a3+" + b64(GO_KEY) + "=", "base64"),
        ("PeterNeumann+c74f20a3+" + b64(GO_KEY).replace("/", "_"), "base64"),
        ("PeterNeumann+c74f20a3+", "empty"),
        (_vkey("PeterNeumann", b"\x02" + GO_KEY[1:]), "unsupported"),
        (_vkey("PeterNeumann", GO_KEY[:-1]), "32 bytes"),
        (_vkey("PeterNeumann", GO_KEY + b"\x00"), "32 bytes"),
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Verifier.from_string(vkey)


def test_verifier_fields_must_agree() -> None:
    verifier = Verifier.from_string(GO_VKEY)
    with pytest.raises(ValueError, match="key hash does not match"):
        Verifier(verifier.name, verifier.key_hash ^ 1, verifier.public_key)
    with pytest.raises(ValueError, match="key hash does not match"):
        Verifier("PeterNeumann2", verifier.key_hash, verifier.public_key)
    with pytest.raises(ValueError, match="32 bytes"):
        Verifier(verifier.name, verifier.key_hash, verifier.public_key[:31])
    with pytest.raises(ValueError, match="'\\+'"):
        Verifier.from_public_key("a+b", verifier.public_key)


@pytest.mark.parametrize(
    ("skey", "message"),
    [
        (GO_VKEY, "PRIVATE\\+KEY\\+"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3", "form"),
        (GO_SKEY.replace("c74f20a3", "c74f20a4"), "does not match"),
        (GO_SKEY.replace("PeterNeumann", "PeterNeumann2"), "does not match"),
        (GO_SKEY.replace("c74f20a3", "c74f20"), "8 hexadecimal"),
        (GO_SKEY[:-1], "base64"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+" + b64(b"\x02" + bytes(32)), "unsupported"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+" + b64(b"\x01" + bytes(31)), "32 bytes"),
    ],
)
def test_malformed_signer_keys_are_refused(skey: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Signer.from_string(skey)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_signer_seed_must_be_32_bytes(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Signer(ORIGIN, seed)


@pytest.mark.parametrize("name", ["", "a b", "a\tb", "a+b", "a\nb", "a\u2003b", "a\ud800"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="key name"):
        Signer(name, bytes(32))


# ---------------------------------------------------------------------------------------------------------------
# Signing and parsing


def test_round_trip(signer: Signer, other: Signer) -> None:
    note = sign_note("hello\nworld\n", signer, other)
    text, sigs = parse_note(note)
    assert text == "hello\nworld\n"
    assert [(s.name, s.key_hash) for s in sigs] == [(signer.name, signer.key_hash), (other.name, other.key_hash)]
    assert open_note(note, [signer.verifier, other.verifier]) == (text, sigs)


def test_text_may_hold_blank_lines(signer: Signer) -> None:
    text = "first\n\nsecond\n\n\nthird\n"
    note = sign_note(text, signer)
    assert open_note(note, [signer.verifier])[0] == text


def test_non_ascii_text_round_trips(signer: Signer) -> None:
    text = "Ognuno sta solo sul cuor della terra\ned è subito sera — 🌅\n"
    assert open_note(sign_note(text, signer), [signer.verifier])[0] == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "end with a newline"),
        ("", "end with a newline"),
        ("tab\there\n", "control character"),
        ("carriage\r\n", "control character"),
        ("escape\x1b[0m\n", "control character"),
        ("nul\x00\n", "control character"),
        ("surrogate \ud800\n", "UTF-8"),
    ],
)
def test_sign_note_refuses_bad_text(signer: Signer, text: str, message: str) -> None:
    with pytest.raises(MalformedNote, match=message):
        sign_note(text, signer)


def test_sign_note_needs_distinct_signers(signer: Signer) -> None:
    with pytest.raises(ValueError, match="at least one signer"):
        sign_note("text\n")
    with pytest.raises(ValueError, match="twice"):
        sign_note("text\n", signer, Signer(signer.name, bytes(range(32))))
    with pytest.raises(ValueError, match="at most 100"):
        sign_note("text\n", *([signer] * (MAX_SIGNATURES + 1)))


def _valid_line(signer: Signer) -> str:
    return sign_note("text\n", signer).split("\n\n", 1)[1]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (None, "no blank line"),
        ("", "no signature"),
        ("— name AAAAAAA=", "end with a newline"),
        ("-- name AAAAAAA=\n", "em dash and a space"),
        ("—name AAAAAAA=\n", "em dash and a space"),
        ("– name AAAAAAA=\n", "em dash and a space"),  # en dash
        (" — name AAAAAAA=\n", "em dash and a space"),
        ("— name\n", "no signature after the key name"),
        ("— name \n", "no signature after the key name"),
        ("—  AAAAAAA=\n", "key name"),
        ("— na+me AAAAAAA=\n", "key name"),
        ("— name !AAAAAA=\n", "base64"),
        ("— name AAAAAAA\n", "base64"),  # unpadded
        ("— name AAAAAAA==\n", "base64"),  # over-padded
        ("— name AAAAAAB=\n", "canonical"),  # non-zero trailing bits
        ("— name AAAA AAA=\n", "base64"),
        ("— name AAAAAAA= \n", "base64"),
        ("— name AAAAAA==\n", "too short"),  # four bytes: a key hash and no signature
        ("— name AAAAAAA=\n\n", "no signature"),  # a trailing blank line leaves no signature block
    ],
)
def test_malformed_notes_are_refused(block: str | None, message: str) -> None:
    note = "text\n" if block is None else "text\n\n" + block
    with pytest.raises(MalformedNote, match=message):
        parse_note(note)
    with pytest.raises(MalformedNote, match=message):
        open_note(note, [])


@pytest.mark.parametrize("bad", ["\r", "\t", "\x00", "\x7f\x1f", "\x0b", "\x0c"])
def test_control_characters_anywhere_are_refused(signer: Signer, bad: str) -> None:
    note = sign_note("text\n", signer)
    for position in (0, 2, len(note) - 1):
        damaged = note[:position] + bad + note[position:]
        with pytest.raises(MalformedNote, match="control character"):
            parse_note(damaged)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(MalformedNote, match="UTF-8"):
        parse_note("text\ud800\n\n— name AAAAAAA=\n")


def test_parse_note_refuses_non_strings() -> None:
    with pytest.raises(MalformedNote, match="string"):
        parse_note(GO_NOTE.encode())  # type: ignore[arg-type]


def test_signature_count_limit(signer: Signer) -> None:
    sig_line = _valid_line(signer)
    _, sigs = parse_note("text\n\n" + sig_line * MAX_SIGNATURES)
    assert len(sigs) == MAX_SIGNATURES
    with pytest.raises(MalformedNote, match="more than 100 signatures"):
        parse_note("text\n\n" + sig_line * (MAX_SIGNATURES + 1))


def test_signatures_of_other_algorithms_parse(signer: Signer) -> None:
    # A cosignature (type 0x04) is 4 + 8 + 64 bytes: carried through as an unknown signature, not refused.
    cosig = line("witness.example/w1", b"\x12\x34\x56\x78" + bytes(72))
    note = sign_note("text\n", signer) + cosig
    _, sigs = parse_note(note)
    assert sigs[1] == Signature("witness.example/w1", 0x12345678, bytes(72))
    assert open_note(note, [signer.verifier])[1] == sigs[:1]


def test_signature_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="32-bit"):
        Signature("name", 2**32, b"x")
    with pytest.raises(ValueError, match="32-bit"):
        Signature("name", -1, b"x")
    with pytest.raises(ValueError, match="key name"):
        Signature("a b", 1, b"x")
    with pytest.raises(ValueError, match="empty"):
        Signature("name", 1, b"")


# ---------------------------------------------------------------------------------------------------------------
# Opening: which signatures count


def test_note_signed_by_another_key_names_it(signer: Signer, other: Signer) -> None:
    note = sign_note("text\n", other)
    with pytest.raises(UnverifiedNote) as caught:
        open_note(note, [signer.verifier])
    assert isinstance(caught.value, ValueError)
    assert caught.value.invalid is False
    assert caught.value.failed_key is None
    assert caught.value.unknown_keys == [(other.name, other.key_hash)]
    assert other.name in str(caught.value)


def test_no_verifiers_at_all(signer: Signer) -> None:
    with pytest.raises(UnverifiedNote) as caught:
        open_note(sign_note("text\n", signer), [])
    assert caught.value.unknown_keys == [(signer.name, signer.key_hash)]


def test_same_name_other_key_is_unknown(signer: Signer) -> None:
    impostor = Signer(signer.name, bytes(32))
    assert impostor.key_hash != signer.key_hash
    with pytest.raises(UnverifiedNote) as caught:
        open_note(sign_note("text\n", impostor), [signer.verifier])
    assert caught.value.invalid is False
    assert caught.value.unknown_keys == [(signer.name, impostor.key_hash)]


def test_same_key_hash_other_name_is_unknown(signer: Signer) -> None:
    sig = signer.sign(b"text\n")
    note = "text\n\n" + Signature("example.org/lookalike", signer.key_hash, sig).to_line()
    with pytest.raises(UnverifiedNote) as caught:
        open_note(note, [signer.verifier])
    assert caught.value.invalid is False
    assert caught.value.unknown_keys == [("example.org/lookalike", signer.key_hash)]


def test_changed_text_is_rejected_as_invalid(signer: Signer) -> None:
    note = sign_note("size 5\n", signer)
    with pytest.raises(UnverifiedNote) as caught:
        open_note(note.replace("5", "6", 1), [signer.verifier])
    assert caught.value.invalid is True
    assert caught.value.failed_key == (signer.name, signer.key_hash)
    assert f"{signer.name}+{signer.key_hash:08x}" in str(caught.value)


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_flipped_signature_bit_is_rejected_as_invalid(signer: Signer, bit: int) -> None:
    sig = bytearray(signer.sign(b"text\n"))
    sig[bit // 8] ^= 1 << (bit % 8)
    note = "text\n\n" + Signature(signer.name, signer.key_hash, bytes(sig)).to_line()
    with pytest.raises(UnverifiedNote) as caught:
        open_note(note, [signer.verifier])
    assert caught.value.invalid is True


def test_wrong_length_signature_from_a_known_key_is_invalid(signer: Signer) -> None:
    sig = signer.sign(b"text\n")
    for bad in (sig[:-1], sig + b"\x00"):
        note = "text\n\n" + Signature(signer.name, signer.key_hash, bad).to_line()
        with pytest.raises(UnverifiedNote) as caught:
            open_note(note, [signer.verifier])
        assert caught.value.invalid is True


def test_one_known_signer_among_unknown_ones_opens(signer: Signer, other: Signer) -> None:
    note = sign_note("text\n", other, signer)
    text, sigs = open_note(note, [signer.verifier])
    assert text == "text\n"
    assert [(s.name, s.key_hash) for s in sigs] == [(signer.name, signer.key_hash)]


def test_a_bad_known_signature_rejects_even_with_a_good_one(signer: Signer, other: Signer) -> None:
    good = sign_note("text\n", signer)
    forged = Signature(other.name, other.key_hash, bytes(64)).to_line()
    with pytest.raises(UnverifiedNote) as caught:
        open_note(good + forged, [signer.verifier, other.verifier])
    assert caught.value.invalid is True
    assert caught.value.failed_key == (other.name, other.key_hash)


def test_identical_duplicate_lines_count_once(signer: Signer, other: Signer) -> None:
    note = sign_note("text\n", signer)
    unknown = _valid_line(other)
    doubled = note + _valid_line(signer) + unknown + unknown
    text, sigs = open_note(doubled, [signer.verifier, signer.verifier])
    assert text == "text\n"
    assert len(sigs) == 1
    with pytest.raises(UnverifiedNote) as caught:
        open_note(doubled, [])
    assert caught.value.unknown_keys == [(signer.name, signer.key_hash), (other.name, other.key_hash)]


@pytest.mark.parametrize("bad_first", [True, False])
def test_every_line_from_a_known_key_must_verify(signer: Signer, bad_first: bool) -> None:
    good = _valid_line(signer)
    bad = Signature(signer.name, signer.key_hash, bytes(64)).to_line()
    block = bad + good if bad_first else good + bad
    with pytest.raises(UnverifiedNote) as caught:
        open_note("text\n\n" + block, [signer.verifier])
    assert caught.value.invalid is True


def test_signature_covers_the_text_up_to_the_last_blank_line(signer: Signer) -> None:
    # A signature line smuggled into the text is text, and changes what was signed.
    note = sign_note("text\n", signer)
    smuggled = "text\n\n" + _valid_line(signer) + "\n" + _valid_line(signer)
    assert parse_note(smuggled)[0] == "text\n\n" + _valid_line(signer)
    with pytest.raises(UnverifiedNote):
        open_note(smuggled, [signer.verifier])
    assert open_note(note, [signer.verifier])[0] == "text\n"


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_text() -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT)
    assert cp.to_text() == f"{ORIGIN}\n5\n{b64(ROOT)}\n"
    assert Checkpoint.from_text(cp.to_text()) == cp
    with_ext = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext two"))
    assert with_ext.to_text() == f"{ORIGIN}\n0\n{b64(ROOT)}\next one\next two\n"
    assert Checkpoint.from_text(with_ext.to_text()) == with_ext


def test_c2sp_example_checkpoint() -> None:
    cp = Checkpoint.from_text(C2SP_CHECKPOINT_TEXT)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert b64(cp.root_hash) == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert cp.to_text() == C2SP_CHECKPOINT_TEXT
    with pytest.raises(UnverifiedNote) as caught:
        open_checkpoint(C2SP_CHECKPOINT_NOTE, [])
    assert [name for name, _ in caught.value.unknown_keys] == ["example.com/behind-the-sofa"]


def test_largest_tree_size() -> None:
    text = f"{ORIGIN}\n18446744073709551615\n{b64(ROOT)}\n"
    assert Checkpoint.from_text(text).size == 2**64 - 1


def test_origin_is_opaque() -> None:
    cp = Checkpoint.from_text(f"a log + friends\n1\n{b64(ROOT)}\n")
    assert cp.origin == "a log + friends"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n5\n{b64(ROOT)}", "end with a newline"),
        ("", "end with a newline"),
        (f"{ORIGIN}\n5\n", "origin line, a tree size line and a root hash line"),
        (f"{ORIGIN}\n", "origin line, a tree size line and a root hash line"),
        (f"{ORIGIN}\n5\n{b64(ROOT)}\n\n", "line 4 is empty"),
        (f"{ORIGIN}\n5\n{b64(ROOT)}\n\next\n", "line 4 is empty"),
        (f"\n5\n{b64(ROOT)}\n", "line 1 is empty"),
        (f"{ORIGIN}\n\n{b64(ROOT)}\n", "line 2 is empty"),
        (f"{ORIGIN}\r\n5\r\n{b64(ROOT)}\r\n", "tree size"),
        (f"{ORIGIN}\r\n5\n{b64(ROOT)}\n", "origin must be one line"),
        (f"{ORIGIN}\n5\n{b64(ROOT)}\next\x1b\n", "extension line 1"),
        (f"{ORIGIN}\n007\n{b64(ROOT)}\n", "leading zeros"),
        (f"{ORIGIN}\n00\n{b64(ROOT)}\n", "leading zeros"),
        (f"{ORIGIN}\n-1\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n+1\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n 1\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n1 \n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n1_000\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n1.0\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n1e3\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n0x10\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n\u0661\u0662\n{b64(ROOT)}\n", "tree size"),  # Arabic-Indic digits
        (f"{ORIGIN}\n18446744073709551616\n{b64(ROOT)}\n", "larger than"),
        (f"{ORIGIN}\n{'9' * 5000}\n{b64(ROOT)}\n", "tree size"),
        (f"{ORIGIN}\n5\n{b64(ROOT[:31])}\n", "32 bytes, got 31"),
        (f"{ORIGIN}\n5\n{b64(ROOT + b'x')}\n", "32 bytes, got 33"),
        (f"{ORIGIN}\n5\n\n", "line 3 is empty"),
        (f"{ORIGIN}\n5\n{b64(ROOT).rstrip('=')}\n", "base64"),
        (f"{ORIGIN}\n5\n{base64.urlsafe_b64encode(ROOT).decode()}\n", "base64"),
        (f"{ORIGIN}\n5\n{b64(ROOT)[:-2]}J=\n", "canonical"),
        (f"{ORIGIN}\n5\n{ROOT.hex()}\n", "base64|32 bytes"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"size": -1}, "tree size"),
        ({"size": 2**64}, "tree size"),
        ({"size": True}, "tree size"),
        ({"size": 1.0}, "tree size"),
        ({"root_hash": ROOT[:31]}, "root hash"),
        ({"root_hash": ROOT.hex()}, "root hash"),
        ({"extensions": ("",)}, "extension line 1"),
        ({"extensions": ("ok", "two\nlines")}, "extension line 2"),
        ({"extensions": "ext"}, "sequence of lines"),
    ],
)
def test_checkpoint_fields_are_checked(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"origin": ORIGIN, "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(ValueError, match=message):
        Checkpoint(**fields)  # type: ignore[arg-type]


def test_signed_checkpoint_round_trip(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT, ("ext",))
    note = sign_checkpoint(cp, signer)
    assert note.startswith(cp.to_text() + "\n— " + ORIGIN + " ")
    opened, sigs = open_checkpoint(note, [signer.verifier])
    assert opened == cp
    assert [(s.name, s.key_hash) for s in sigs] == [(signer.name, signer.key_hash)]
    assert open_checkpoint(note, [signer.verifier], origin=ORIGIN)[0] == cp
    with pytest.raises(ValueError, match="expected 'example.org/elsewhere'"):
        open_checkpoint(note, [signer.verifier], origin="example.org/elsewhere")


def test_altered_checkpoint_is_rejected(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), signer)
    encoded_root = b64(ROOT)
    changed_root = encoded_root[:5] + ("A" if encoded_root[5] != "A" else "B") + encoded_root[6:]
    for altered in (note.replace("\n42\n", "\n43\n"), note.replace(encoded_root, changed_root)):
        assert altered != note
        with pytest.raises(UnverifiedNote) as caught:
            open_checkpoint(altered, [signer.verifier])
        assert caught.value.invalid is True


def test_checkpoint_signed_by_another_key_is_rejected(signer: Signer, other: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), other)
    with pytest.raises(UnverifiedNote) as caught:
        open_checkpoint(note, [signer.verifier])
    assert caught.value.unknown_keys == [(other.name, other.key_hash)]


def test_verified_note_that_is_not_a_checkpoint(signer: Signer) -> None:
    with pytest.raises(ValueError, match="tree size"):
        open_checkpoint(sign_note(f"{ORIGIN}\nfive\n{b64(ROOT)}\n", signer), [signer.verifier])
