"""Tests for wrapped data keys and sealed fields: round trips in every language the service takes testimony in,
every way a ciphertext can be moved, relabelled, altered or cut, and fixed vectors of the on-disk formats."""

from __future__ import annotations

import string
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.core.crypto import envelope
from intake.core.crypto.envelope import (
    Binding,
    OpenDataKey,
    Unreadable,
    field_data_key_id,
    frame,
    new_data_key,
    open_field,
    seal_field,
    unwrap_data_key,
    wrap_data_key,
    wrapped_kek_version,
)

SETTINGS = settings(max_examples=75, deadline=None, database=None)

ARMENIAN = st.characters(min_codepoint=0x0531, max_codepoint=0x058F)
CYRILLIC = st.characters(min_codepoint=0x0400, max_codepoint=0x04FF)
AZERBAIJANI = st.sampled_from("abcçdeəfgğhxıijkqlmnoöprsştuüvyzABCÇDEƏFGĞHXIİJKQLMNOÖPRSŞTUÜVYZ .,")
ENGLISH = st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " \n\t")
TEXT = st.one_of(
    st.text(ARMENIAN),
    st.text(CYRILLIC),
    st.text(AZERBAIJANI),
    st.text(ENGLISH),
    st.text(st.one_of(ARMENIAN, CYRILLIC, AZERBAIJANI, ENGLISH)),
)
NAMES = st.text(st.one_of(ENGLISH, CYRILLIC, AZERBAIJANI), max_size=40)
KEY_BYTES = st.binary(min_size=32, max_size=32)
KEY_IDS = st.integers(min_value=0, max_value=2**64 - 1)
KEK_VERSIONS = st.integers(min_value=0, max_value=2**32 - 1)
ROW_IDS = st.integers(min_value=-(2**63), max_value=2**63 - 1)

KEK = bytes(range(32))
OTHER_KEK = bytes(range(100, 132))
DATA_KEY = bytes(range(32, 64))
KEY = OpenDataKey(42, DATA_KEY)
PLACE = Binding("testimonies", "narrative", 7)
LARGE = ("Բարեւ Привет Salam əşçğıöü hello " * (1024 * 1024 // 48 + 1)).encode()[: 1024 * 1024]

# Fixed vectors of format 1. If one of these changes, stored data of the old format no longer opens: that needs a
# new format number and a reader for the old one, never an edit of these constants.
VECTOR_NONCE = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
VECTOR_TEXT = "Բարեւ Привет Salam əşçğıöü hello".encode()
WRAPPED_HEX = (
    "4b0100000003a0a1a2a3a4a5a6a7a8a9aaabc6395e0e61ee24984a4cadf82b57eef1409d6b23a682745ba4371cbd43964b3e38a6a336"
    "7e5a56932b22233f24b93da1"
)
FIELD_HEX = (
    "4601000000000000002aa0a1a2a3a4a5a6a7a8a9aaabaa8e71951257550f77aa8d6ab98cf67629af73d78965a4025cf3a798be466661"
    "dacafe13c23607cb095410516e1ef8921a3cc4c81e7e3519846cca4f2b4cdff9a3ec"
)


def spec_frame(*parts: str) -> bytes:
    """The binding encoding as the module docstring states it, written out again independently of `frame`."""
    return b"".join(struct.pack(">H", len(part.encode())) + part.encode() for part in parts)


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- frame -------------------------------------------------------------------------------------------------------


def test_frame_length_prefixes_each_part() -> None:
    assert frame("ab", 1, "") == b"\x00\x02ab\x00\x011\x00\x00"
    assert frame("ə") == b"\x00\x02\xc9\x99"


def test_frame_is_unambiguous_where_concatenation_is_not() -> None:
    assert frame("ab", "c") != frame("a", "bc")
    assert frame("a", "") != frame("", "a")


def test_frame_refuses_parts_its_length_prefix_cannot_hold() -> None:
    assert len(frame("x" * 0xFFFF)) == 2 + 0xFFFF
    with pytest.raises(ValueError):
        frame("x" * 0x10000)


# -- sealed fields: round trips -----------------------------------------------------------------------------------


@SETTINGS
@given(text=TEXT, key=KEY_BYTES, key_id=KEY_IDS, table=NAMES, field=NAMES, row_id=ROW_IDS)
def test_field_round_trip(text: str, key: bytes, key_id: int, table: str, field: str, row_id: int) -> None:
    data_key = OpenDataKey(key_id, key)
    place = Binding(table, field, row_id)
    plaintext = text.encode()
    sealed = seal_field(data_key, place, plaintext)
    assert len(sealed) == 2 + 8 + 12 + len(plaintext) + 16
    assert field_data_key_id(sealed) == key_id
    assert open_field(OpenDataKey(key_id, key), place, sealed) == plaintext


@pytest.mark.parametrize("plaintext", [b"", LARGE], ids=["empty", "1MiB"])
def test_field_round_trip_empty_and_large(plaintext: bytes) -> None:
    sealed = seal_field(KEY, PLACE, plaintext)
    assert len(sealed) == 38 + len(plaintext)
    assert open_field(KEY, PLACE, sealed) == plaintext
    if plaintext:
        assert plaintext[:64] not in sealed


def test_sealing_twice_uses_fresh_nonces() -> None:
    first, second = seal_field(KEY, PLACE, b"same"), seal_field(KEY, PLACE, b"same")
    assert first[10:22] != second[10:22]
    assert first != second
    assert open_field(KEY, PLACE, first) == open_field(KEY, PLACE, second) == b"same"


def test_an_open_data_key_checks_its_length_and_hides_its_bytes() -> None:
    with pytest.raises(ValueError):
        OpenDataKey(1, bytes(31))
    assert DATA_KEY.hex() not in repr(KEY)
    assert repr(KEY) == "<OpenDataKey 42>"


def test_new_data_keys_are_random_32_bytes() -> None:
    first, second = new_data_key(), new_data_key()
    assert len(first) == len(second) == 32
    assert first != second


# -- sealed fields: failures -------------------------------------------------------------------------------------

SEALED = seal_field(KEY, PLACE, "Ճշմարտություն правда həqiqət truth".encode())


@pytest.mark.parametrize(
    "place",
    [
        Binding("testimonies", "narrative", 8),
        Binding("testimonies", "narrative", -7),
        Binding("testimonies", "summary", 7),
        Binding("persons", "narrative", 7),
        Binding("testimonie", "snarrative", 7),  # same bytes as the original when simply concatenated
    ],
    ids=["other-row", "negated-row", "other-field", "other-table", "shifted-boundary"],
)
def test_field_moved_elsewhere_fails(place: Binding) -> None:
    assert open_field(KEY, PLACE, SEALED)  # the original place opens
    with pytest.raises(Unreadable):
        open_field(KEY, place, SEALED)


def test_field_under_another_key_id_fails() -> None:
    with pytest.raises(Unreadable, match="another data key"):
        open_field(OpenDataKey(43, DATA_KEY), PLACE, SEALED)


def test_field_under_same_key_id_but_other_key_bytes_fails() -> None:
    with pytest.raises(Unreadable):
        open_field(OpenDataKey(42, OTHER_KEK), PLACE, SEALED)


def test_field_relabelled_with_another_key_id_fails_even_with_the_right_key_bytes() -> None:
    relabelled = SEALED[:2] + struct.pack(">Q", 43) + SEALED[10:]
    assert field_data_key_id(relabelled) == 43
    with pytest.raises(Unreadable):
        open_field(OpenDataKey(43, DATA_KEY), PLACE, relabelled)


def test_unreadable_message_names_the_place_but_not_the_content() -> None:
    with pytest.raises(Unreadable) as caught:
        open_field(KEY, Binding("testimonies", "narrative", 8), SEALED)
    message = str(caught.value)
    assert "testimonies.narrative" in message
    assert "row 8" in message
    assert "правда" not in message
    assert DATA_KEY.hex() not in message


FIELD_BITS = {
    "magic": 0,
    "format": 8 + 1,
    "key-id-high": 2 * 8,
    "key-id-low": 9 * 8 + 2,
    "nonce-first": 10 * 8,
    "nonce-last": 21 * 8 + 7,
    "body-first": 22 * 8,
    "body-middle": 30 * 8 + 4,
    "tag-first": (len(SEALED) - 16) * 8,
    "tag-last": len(SEALED) * 8 - 1,
}


@pytest.mark.parametrize("bit", FIELD_BITS.values(), ids=FIELD_BITS.keys())
def test_field_with_a_flipped_bit_fails(bit: int) -> None:
    with pytest.raises(Unreadable):
        open_field(KEY, PLACE, flipped(SEALED, bit))


@SETTINGS
@given(bit=st.integers(min_value=0, max_value=len(SEALED) * 8 - 1))
def test_field_with_any_flipped_bit_fails(bit: int) -> None:
    with pytest.raises(Unreadable):
        open_field(KEY, PLACE, flipped(SEALED, bit))


def test_every_truncation_of_a_field_fails() -> None:
    for length in range(len(SEALED)):
        with pytest.raises(Unreadable):
            open_field(KEY, PLACE, SEALED[:length])


@pytest.mark.parametrize(
    "damaged",
    [SEALED[1:], SEALED[:-1], SEALED[:22] + SEALED[23:], SEALED + b"\x00", SEALED[:22] + b"\x00" + SEALED[22:]],
    ids=["head-cut", "tail-cut", "body-byte-cut", "byte-appended", "byte-inserted"],
)
def test_field_with_bytes_cut_or_added_fails(damaged: bytes) -> None:
    with pytest.raises(Unreadable):
        open_field(KEY, PLACE, damaged)


def test_empty_field_ciphertext_truncated_by_one_byte_fails() -> None:
    sealed = seal_field(KEY, PLACE, b"")
    assert open_field(KEY, PLACE, sealed) == b""
    with pytest.raises(Unreadable):
        open_field(KEY, PLACE, sealed[:-1])


def test_field_of_another_format_fails() -> None:
    with pytest.raises(Unreadable, match="format"):
        open_field(KEY, PLACE, SEALED[:1] + b"\x02" + SEALED[2:])
    with pytest.raises(Unreadable, match="format"):
        open_field(KEY, PLACE, b"K" + SEALED[1:])


# -- wrapped data keys: round trips ----------------------------------------------------------------------------


@SETTINGS
@given(kek=KEY_BYTES, data_key=KEY_BYTES, version=KEK_VERSIONS, key_id=KEY_IDS, owner=TEXT)
def test_wrap_round_trip(kek: bytes, data_key: bytes, version: int, key_id: int, owner: str) -> None:
    wrapped = wrap_data_key(kek, version, data_key, key_id=key_id, owner=owner)
    assert len(wrapped) == 6 + 12 + 32 + 16
    assert wrapped_kek_version(wrapped) == version
    assert data_key not in wrapped
    assert unwrap_data_key(kek, wrapped, key_id=key_id, owner=owner) == data_key


@pytest.mark.parametrize(
    "owner",
    ["", "ա" * (0xFFFF // 2), "ж" * (0xFFFF // 2), "ə" * (0xFFFF // 2), "x" * 0xFFFF],
    ids=["empty", "armenian-64KiB", "russian-64KiB", "azerbaijani-64KiB", "english-64KiB"],
)
def test_wrap_round_trip_empty_and_largest_owner(owner: str) -> None:
    wrapped = wrap_data_key(KEK, 1, DATA_KEY, key_id=5, owner=owner)
    assert unwrap_data_key(KEK, wrapped, key_id=5, owner=owner) == DATA_KEY


def test_wrap_refuses_an_owner_too_long_to_bind() -> None:
    with pytest.raises(ValueError):
        wrap_data_key(KEK, 1, DATA_KEY, key_id=5, owner="x" * 0x10000)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrap_refuses_data_keys_that_are_not_32_bytes(length: int) -> None:
    with pytest.raises(ValueError):
        wrap_data_key(KEK, 1, bytes(length), key_id=5, owner="testimony")


def test_wrapping_twice_uses_fresh_nonces() -> None:
    first = wrap_data_key(KEK, 1, DATA_KEY, key_id=5, owner="testimony")
    second = wrap_data_key(KEK, 1, DATA_KEY, key_id=5, owner="testimony")
    assert first[6:18] != second[6:18]


# -- wrapped data keys: failures ---------------------------------------------------------------------------------

WRAPPED = wrap_data_key(KEK, 3, DATA_KEY, key_id=42, owner="testimony")


def test_wrapped_key_under_another_kek_fails() -> None:
    assert unwrap_data_key(KEK, WRAPPED, key_id=42, owner="testimony") == DATA_KEY
    with pytest.raises(Unreadable, match="KEK version 3"):
        unwrap_data_key(OTHER_KEK, WRAPPED, key_id=42, owner="testimony")


@pytest.mark.parametrize("key_id", [41, 43, 0, 42 + 2**32])
def test_wrapped_key_with_another_key_id_fails(key_id: int) -> None:
    with pytest.raises(Unreadable):
        unwrap_data_key(KEK, WRAPPED, key_id=key_id, owner="testimony")


@pytest.mark.parametrize("owner", ["person", "", "testimony ", "Testimony", "testimon"])
def test_wrapped_key_for_another_owner_fails(owner: str) -> None:
    with pytest.raises(Unreadable):
        unwrap_data_key(KEK, WRAPPED, key_id=42, owner=owner)


@pytest.mark.parametrize("version", [0, 2, 4, 3 + 2**8, 3 + 2**24])
def test_wrapped_under_another_version_fails(version: int) -> None:
    relabelled = WRAPPED[:2] + struct.pack(">I", version) + WRAPPED[6:]
    assert wrapped_kek_version(relabelled) == version
    with pytest.raises(Unreadable, match=f"KEK version {version}"):
        unwrap_data_key(KEK, relabelled, key_id=42, owner="testimony")


def test_the_same_kek_bytes_under_another_version_do_not_open_it() -> None:
    """A rewrap under a new version must be made by `wrap_data_key`; the header cannot just be edited."""
    rewrapped = wrap_data_key(KEK, 4, DATA_KEY, key_id=42, owner="testimony")
    spliced = rewrapped[:6] + WRAPPED[6:]
    with pytest.raises(Unreadable):
        unwrap_data_key(KEK, spliced, key_id=42, owner="testimony")


WRAP_BITS = {
    "magic": 0,
    "format": 8,
    "version-high": 2 * 8 + 7,
    "version-low": 5 * 8,
    "nonce-first": 6 * 8,
    "nonce-last": 17 * 8 + 7,
    "key-first": 18 * 8,
    "key-last": 49 * 8 + 7,
    "tag-first": 50 * 8,
    "tag-last": 66 * 8 - 1,
}


@pytest.mark.parametrize("bit", WRAP_BITS.values(), ids=WRAP_BITS.keys())
def test_wrapped_key_with_a_flipped_bit_fails(bit: int) -> None:
    with pytest.raises(Unreadable):
        unwrap_data_key(KEK, flipped(WRAPPED, bit), key_id=42, owner="testimony")


@SETTINGS
@given(bit=st.integers(min_value=0, max_value=66 * 8 - 1))
def test_wrapped_key_with_any_flipped_bit_fails(bit: int) -> None:
    with pytest.raises(Unreadable):
        unwrap_data_key(KEK, flipped(WRAPPED, bit), key_id=42, owner="testimony")


def test_every_truncation_or_extension_of_a_wrapped_key_fails() -> None:
    for damaged in [WRAPPED[:length] for length in range(66)] + [WRAPPED + b"\x00", b"K" + WRAPPED]:
        with pytest.raises(Unreadable):
            unwrap_data_key(KEK, damaged, key_id=42, owner="testimony")
        with pytest.raises(Unreadable):
            wrapped_kek_version(damaged)


def test_wrapped_key_of_another_format_fails() -> None:
    for damaged in (b"F" + WRAPPED[1:], WRAPPED[:1] + b"\x02" + WRAPPED[2:]):
        with pytest.raises(Unreadable, match="format"):
            unwrap_data_key(KEK, damaged, key_id=42, owner="testimony")


# -- fixed vectors ------------------------------------------------------------------------------------------------


def test_wrapped_key_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "random_nonce", lambda: VECTOR_NONCE)
    assert wrap_data_key(KEK, 3, DATA_KEY, key_id=42, owner="testimony").hex() == WRAPPED_HEX


def test_wrapped_key_vector_opens() -> None:
    wrapped = bytes.fromhex(WRAPPED_HEX)
    assert wrapped_kek_version(wrapped) == 3
    assert unwrap_data_key(KEK, wrapped, key_id=42, owner="testimony") == DATA_KEY


def test_wrapped_key_vector_follows_the_documented_layout() -> None:
    aad = spec_frame("intake/data-key", "1", "testimony", "42", "3")
    expected = b"K\x01" + (3).to_bytes(4, "big") + VECTOR_NONCE + AESGCM(KEK).encrypt(VECTOR_NONCE, DATA_KEY, aad)
    assert expected.hex() == WRAPPED_HEX


def test_sealed_field_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "random_nonce", lambda: VECTOR_NONCE)
    assert seal_field(KEY, PLACE, VECTOR_TEXT).hex() == FIELD_HEX


def test_sealed_field_vector_opens() -> None:
    sealed = bytes.fromhex(FIELD_HEX)
    assert field_data_key_id(sealed) == 42
    assert open_field(OpenDataKey(42, DATA_KEY), PLACE, sealed).decode() == "Բարեւ Привет Salam əşçğıöü hello"


def test_sealed_field_vector_follows_the_documented_layout() -> None:
    aad = spec_frame("intake/field", "1", "testimonies", "narrative", "7", "42")
    header = b"F\x01" + (42).to_bytes(8, "big")
    expected = header + VECTOR_NONCE + AESGCM(DATA_KEY).encrypt(VECTOR_NONCE, VECTOR_TEXT, aad)
    assert expected.hex() == FIELD_HEX


def test_open_data_key_derives_hkdf_sha256_subkeys() -> None:
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"salt", info=b"info").derive(DATA_KEY)
    assert KEY.derive(salt=b"salt", info=b"info") == expected
    assert KEY.derive(salt=b"salt", info=b"other") != expected
    assert KEY.derive(salt=b"other", info=b"info") != expected
