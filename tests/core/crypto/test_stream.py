"""Tests for attachments as chunked STREAM ciphertexts: round trips over any split of the input, every way a stored
stream can be cut, reordered, extended, spliced or altered, and fixed vectors of the header and chunk formats."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, Sequence

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import example, given, settings
from hypothesis import strategies as st

from intake.core.crypto import stream
from intake.core.crypto.envelope import Binding, OpenDataKey, Unreadable
from intake.core.crypto.stream import (
    CHUNK_SIZE,
    StreamSealer,
    chunk_count,
    encrypted_chunk_size,
    open_stream,
    parse_header,
)

SETTINGS = settings(max_examples=60, deadline=None, database=None)
CS = 1024
DATA_KEY = bytes(range(32, 64))
KEY = OpenDataKey(42, DATA_KEY)
PLACE = Binding("attachments", "content", 9)

# Fixed vector of format 1: a 1500-byte attachment in two 1024-byte chunks, made with the salt c0..cf and the
# nonces b0b0.. and b1b1... Never edit these to follow a code change: a new layout needs a new format number.
VECTOR_PLAINTEXT = bytes(i % 251 for i in range(1500))
VECTOR_SALT = bytes(range(0xC0, 0xD0))
VECTOR_NONCES = (b"\xb0" * 12, b"\xb1" * 12)
STREAM_HEADER_HEX = "530100000400c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
STREAM_CHUNK_0_HEX = (
    "b0b0b0b0b0b0b0b0b0b0b0b023c391d0d2c44321b3615d07e8d53aea3af80c1fa66518604e882351438cc720bedca2ed36f66836627c"
    "4c6a3d78932305bb29d0bf091b012da57f8d427426c8c25fe7d4dec52511c2410fb9a3bfbfcdaca2f1c6069b86a6af2aaafaa4551c05"
    "aa58eae1124e9dddc41decf80a10f62128a47a59f6be7f7e5e9bdea4744d39043ddb4e38ab255ff325e4a9370558a808224057535612"
    "edd31cae4bf832f473c8cafbbca5087cde81df092188039e46d3912a154e5dd3ef0ff1c26cf81d56832a715e5aa9f5a18dbd76c0cff7"
    "95d27d5795621ff2997b05b06af1ee2eae6182634bf5e51e3c14f013378e5369f3720a1000e838122ada6564182c10b8aec21e214adf"
    "12ab5eb2342d4daff328d0e0c0ba36de9d351c7acb03994d50a52781061203389cd43bc994a20679b0477231760de8b37eb067cc9d00"
    "0f3bfd83e659f8f50f2f7eb325c5250bd94365631c1ea15ca78a838d8f020814c9c6da7b06e765c20e913638b898d5141c0384ac0769"
    "c0b75a1d3151ccfb2c3d329322eb3222f60d9ec4ec9edd6b3d1e5cc7d25a0c741baa0d995838f08d5e37d646bed8314fa25861409246"
    "6a9292cdf887c67017c53f42e902d0a5254ec02029849854ba722219882f2c7af5154dd76ea376195821f8607c01f5a7fc613af4ecc9"
    "4d5d85e13f4858f0f1e14786b5bc93b8b325996ce5a72c908831f4955565b078e734317e1e0ee58ca3d1fc0f553dc8d591650a261919"
    "853f819e462000c2aae6a2109291e83393f01c86cbbbfbfe505f07f0b1d4d045fc831e8e235f0049c9d080c6468425b58d81819d483c"
    "cebd6cefb99e3b68996b3db38019a3112dba164f6ec6ab9108186cf6c2e931bdde09f55549572ddcd0b383ae9af8c5af946fe3f000da"
    "206f5983b76037ddc9ee03a72ab731de9ff1a1439044fecb4b31714cd381fd1a175038344106f6cdd916fd7c360ce7583648ade346ed"
    "13edb69ea215c417b976aebec9ec54c93393febd6a1bbba23cd76d2a122723023fed0ea24fe8449c65afd3143d0b167794778733e604"
    "6dfc5738c337122ec485a0f4a714e2a272ce9ff7afd5a0fb18bc3b375a019173dc5a955bb0d5ce72ec1fe86894455fdc6758325f2f5f"
    "3f3832376734d403d2a0c56a99554156fa34fbbca130757d97a25628b7bd2457325c04c7d16aa75e3929767ac2af329798a3096144c4"
    "f682c19759010d9ffede5b059f55baf21292f3ca8a9d7519c2047cf830ff4769980dec947dd1fe5db695a7191998c36076f99f37fb93"
    "5a1696da1ce946f9a16e03a961e04a315067b0a4712089f1f7bf2b1b5c7438b9812432da7c3ca1ebc79b122b4b89d553e4b447040423"
    "6f72e11db0a2eb16731dd0de6bf559ad494119ede74cccd074fd19600c3edd55208b8fe243e16819e75e9f9df3bc5de60b79c63e78e4"
    "580891a5cabbf7a3b29a9e79aef0d901726fd3f1ad38174b5cd3"
)
STREAM_CHUNK_1_HEX = (
    "b1b1b1b1b1b1b1b1b1b1b1b1f000b3ff36c960fd378dc04f3f0b16201173396df310a023b9b46db4cacbfea491afc2cd5307c8934de4"
    "5e9bd8297676d39825aa372c918985b8f2cf0e1f486874fe74ccd99cec84e2157bf15d5a4da32ac9ec0049e10e1ba2c72cfb83455df7"
    "9a982631498bd51327f05270ce2b53157ecd304a4c6d5db4ae23522f2a2de29175b65b364b3ea8c7edfb570b0319e22e6c917b8e7271"
    "ec0f44f0956d1085d8cfd5a0b03a79f560c55ebea4349d3c71e7adf6b836fbbcc13dc545663cba9b9c90e5df07e61549f14c52bb5924"
    "fc36ca36d778ac6e7d99f992b140f9401b64522fd0cca32733916046fe60047fd0b68e3ab2d67664c4980260b81864f3d110aa89075c"
    "8b29daef8e20f7b87d85867292caf0ed08fdfa3526381f6c35b8af30a5c5db8a597eed3b218fa19fd7a1fa12b585c4e7ce9c411a089e"
    "dde114f24ac64b0d6a61a0f90d0277182e549d1e5c07f597077490a4b1346f64f358977bc6f94c8ae3ebe3bec265b77b0c937760aab2"
    "da576d212163f2f83d264b2b3360dee19eee3faf800c1a2328b8c2c501c260d0e7abef055504b5d94f31a772f9bf92e6b4586dbe99f8"
    "4ddeffa560c9f9e894684a26390eead94513e27eff6f1c91cbcdb18ec111bb48ab8528bb5a59e8bec2ef0983c669df386e0dd7462623"
    "8554073606485045c18b8b35552dadc8f2cd1fdccd977fe92ab8672970d9e44457c3bbbfd4787d17d8bd209f1d4a423e6f6a90eee42e"
    "972b4cbc870bdb6ae07fad67549649d8b00364db9f79b7f5538acf6cbc69afe471e6870bf5bac83d9e97511c51f77cb7770bdc07ca04"
    "16aba06a66d17c88155a897a5a609ebbd5b39959e6091dd281430a0f07ebb651372b37b78127e01b0ed8f89c7338f9fed8837b172e6d"
    "7de90001687489aa6672ec7bc7bbadd25d865061c32b056936cc01965b99a1a4ac5f389f76f18f8b83c6812b8b89c8229c1e56bd3e86"
    "e6158ceec0336bbcffb3d90866e83576fd3ef443fb2d9e79060c64b5025370af82f64d88a2d1706ab07ede14c39736e1a0411ec610ad"
    "169be528036a3f7d94f3f15878320b8095309a6da7771c85e6bb48a0c2ddd05286c50ca048cf165ba8e02c3ccf829245a52355486da5"
    "051195c7c7974e94cb524307173bdafdf07273435e842e418ea389c9061af093117f8b3db62a9d97100ebff49f73814493981322dd5f"
    "027fb66f1343987e82543596f12ceede6642cd1046a47fca8db63c64a03f09be7860645183d50c8bc4ca586c05984a3cd0b0a05ee5c6"
    "db85be19b5a4561880958a5edd3df6db1f662c1651856bce2c203f3825d47b925d2746a2caee25aa22dad8ba5ed37efa8193a3521678"
    "7e3de1b79aaa98c00468e4e81107d490c9b1f78e9a4ad25d5291804ab0d7e9e3627aaee2648ee9364bee59b732080f42485eb8597749"
    "d888f298f88e243b39bffc29379659623ac59084e54813fd3ad8"
)


def seal(
    data: bytes, *, pieces: Sequence[int] = (), chunk_size: int = CS, key: OpenDataKey = KEY, place: Binding = PLACE
) -> tuple[bytes, list[bytes]]:
    """Seal `data` into (header, chunks), fed in pieces of the given lengths (cycled, zero-length pieces included),
    then the rest in one piece."""
    sealer = StreamSealer(key, place, chunk_size=chunk_size)
    chunks: list[bytes] = []
    position = 0
    for length in itertools.cycle(pieces) if any(pieces) else ():
        if position >= len(data):
            break
        chunks += sealer.feed(data[position : position + length])
        position += length
    chunks += sealer.feed(data[position:])
    chunks.append(sealer.finish())
    assert sealer.chunks_written == len(chunks)
    return sealer.header, chunks


def opened(header: bytes, chunks: Sequence[bytes], *, key: OpenDataKey = KEY, place: Binding = PLACE) -> bytes:
    return b"".join(open_stream(key, place, header, chunks))


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def spec_frame(*parts: str) -> bytes:
    """The binding encoding as `envelope` documents it, written out again independently of `frame`."""
    return b"".join(struct.pack(">H", len(part.encode())) + part.encode() for part in parts)


def spec_stream_key(salt: bytes, chunk_size: int, place: Binding = PLACE, key_id: int = 42) -> AESGCM:
    info = spec_frame("intake/stream", "1", place.table, place.field, str(place.row_id), str(key_id), str(chunk_size))
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(DATA_KEY))


def spec_chunk(aead: AESGCM, nonce: bytes, index: int, final: bool, plaintext: bytes) -> bytes:
    return nonce + aead.encrypt(nonce, plaintext, spec_frame("intake/stream-chunk", "1", str(index), str(int(final))))


# -- round trips ------------------------------------------------------------------------------------------------


def check_shape(header: bytes, chunks: Sequence[bytes], length: int, chunk_size: int) -> None:
    assert len(header) == 22
    assert header[:2] == b"S\x01"
    assert parse_header(header)[0] == chunk_size
    assert len(chunks) == chunk_count(length, chunk_size) == length // chunk_size + 1
    assert all(len(chunk) == encrypted_chunk_size(chunk_size) == chunk_size + 28 for chunk in chunks)


@SETTINGS
@given(
    data=st.binary(max_size=5 * CS),
    pieces=st.lists(st.integers(min_value=0, max_value=3 * CS), max_size=12),
    chunk_size=st.one_of(st.just(CS), st.integers(min_value=CS, max_value=3 * CS)),
)
@example(data=bytes(3 * CS), pieces=[0], chunk_size=CS)
@example(data=bytes(3 * CS), pieces=[0, CS], chunk_size=CS)
def test_round_trip_in_any_pieces(data: bytes, pieces: list[int], chunk_size: int) -> None:
    header, chunks = seal(data, pieces=pieces, chunk_size=chunk_size)
    check_shape(header, chunks, len(data), chunk_size)
    assert opened(header, chunks) == data


@SETTINGS
@given(
    length=st.sampled_from([0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS - 1, 3 * CS, 3 * CS + 1]),
    pieces=st.lists(st.integers(min_value=1, max_value=2 * CS), min_size=1, max_size=8),
    data=st.data(),
)
def test_round_trip_at_chunk_boundaries(length: int, pieces: list[int], data: st.DataObject) -> None:
    plaintext = data.draw(st.binary(min_size=length, max_size=length))
    header, chunks = seal(plaintext, pieces=pieces)
    check_shape(header, chunks, length, CS)
    assert opened(header, chunks) == plaintext


@pytest.mark.parametrize("length", [0, CS - 1, CS, CS + 1, 3 * CS])
@pytest.mark.parametrize("pieces", [(), (1,), (CS - 1,), (CS + 1,), (7, CS, 0, 3)], ids=str)
def test_round_trip_of_edge_lengths(length: int, pieces: tuple[int, ...]) -> None:
    plaintext = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    header, chunks = seal(plaintext, pieces=pieces)
    check_shape(header, chunks, length, CS)
    assert opened(header, chunks) == plaintext


@pytest.mark.parametrize("tail", [b"", b"\x00", b"\x80", b"\x80\x00", b"\x00" * (CS - 1), b"\x80" * CS])
def test_data_that_looks_like_padding_survives(tail: bytes) -> None:
    plaintext = b"attachment" + tail
    assert opened(*seal(plaintext)) == plaintext


def test_one_chunk_per_full_chunk_is_returned_as_soon_as_it_is_complete() -> None:
    sealer = StreamSealer(KEY, PLACE, chunk_size=CS)
    assert sealer.feed(bytes(CS - 1)) == []
    assert len(sealer.feed(b"x")) == 1
    assert len(sealer.feed(memoryview(bytes(2 * CS + 5)))) == 2
    assert len(sealer.feed(bytearray(CS - 5))) == 1
    assert sealer.feed(b"") == []
    assert sealer.chunks_written == 4
    assert len(sealer.finish()) == encrypted_chunk_size(CS)
    assert sealer.chunks_written == 5


def test_default_chunk_size_is_64_kib() -> None:
    assert CHUNK_SIZE == 64 * 1024
    assert StreamSealer(KEY, PLACE).chunk_size == CHUNK_SIZE
    assert parse_header(StreamSealer(KEY, PLACE).header)[0] == CHUNK_SIZE
    assert chunk_count(CHUNK_SIZE) == 2


def test_a_finished_sealer_takes_nothing_more() -> None:
    sealer = StreamSealer(KEY, PLACE, chunk_size=CS)
    sealer.finish()
    with pytest.raises(ValueError):
        sealer.feed(b"more")
    with pytest.raises(ValueError):
        sealer.finish()


@pytest.mark.parametrize("chunk_size", [0, 1, CS - 1, 4 * 1024 * 1024 + 1])
def test_unsupported_chunk_sizes_are_refused(chunk_size: int) -> None:
    with pytest.raises(ValueError):
        StreamSealer(KEY, PLACE, chunk_size=chunk_size)


def test_largest_chunk_size_round_trips() -> None:
    plaintext = b"\x01" * (4 * 1024 * 1024 + 3)
    header, chunks = seal(plaintext, chunk_size=4 * 1024 * 1024)
    check_shape(header, chunks, len(plaintext), 4 * 1024 * 1024)
    assert opened(header, chunks) == plaintext


def test_each_stream_has_its_own_salt_and_each_chunk_its_own_nonce() -> None:
    header, chunks = seal(bytes(3 * CS))
    other_header, other_chunks = seal(bytes(3 * CS))
    assert header[6:] != other_header[6:]
    nonces = {chunk[:12] for chunk in chunks + other_chunks}
    assert len(nonces) == 8
    assert chunks[0][12:] != chunks[1][12:]  # equal plaintext chunks encrypt differently


def test_open_stream_reads_lazily_from_any_iterable() -> None:
    plaintext = bytes(range(256)) * 12
    header, chunks = seal(plaintext)
    pieces = open_stream(KEY, PLACE, header, iter(chunks))
    assert isinstance(pieces, Iterator)
    assert next(pieces) == plaintext[:CS]
    assert b"".join(pieces) == plaintext[CS:]


# -- tampering ---------------------------------------------------------------------------------------------------

PLAINTEXT = bytes(i % 239 for i in range(3 * CS + 100))
HEADER, CHUNKS = seal(PLAINTEXT)
OTHER_HEADER, OTHER_CHUNKS = seal(PLAINTEXT)  # same data key, same place, another salt
ROW_HEADER, ROW_CHUNKS = seal(PLAINTEXT, place=Binding("attachments", "content", 10))


def test_the_untampered_stream_opens() -> None:
    assert len(CHUNKS) == 4
    assert opened(HEADER, CHUNKS) == PLAINTEXT
    assert opened(OTHER_HEADER, OTHER_CHUNKS) == PLAINTEXT
    assert opened(ROW_HEADER, ROW_CHUNKS, place=Binding("attachments", "content", 10)) == PLAINTEXT


SHIFTED = b"".join(CHUNKS)[1:] + b"\x00"
TAMPERED: dict[str, tuple[bytes, list[bytes]]] = {
    "last-chunk-dropped": (HEADER, CHUNKS[:-1]),
    "only-first-chunk": (HEADER, CHUNKS[:1]),
    "first-chunk-dropped": (HEADER, CHUNKS[1:]),
    "middle-chunk-dropped": (HEADER, CHUNKS[:1] + CHUNKS[2:]),
    "two-chunks-swapped": (HEADER, [CHUNKS[1], CHUNKS[0], *CHUNKS[2:]]),
    "last-two-swapped": (HEADER, [*CHUNKS[:2], CHUNKS[3], CHUNKS[2]]),
    "chunk-duplicated": (HEADER, [*CHUNKS[:2], CHUNKS[1], *CHUNKS[2:]]),
    "final-chunk-duplicated": (HEADER, [*CHUNKS, CHUNKS[-1]]),
    "chunk-appended-after-final": (HEADER, [*CHUNKS, CHUNKS[0]]),
    "foreign-chunk-appended-after-final": (HEADER, [*CHUNKS, OTHER_CHUNKS[3]]),
    "chunk-spliced-from-another-stream": (HEADER, [CHUNKS[0], OTHER_CHUNKS[1], *CHUNKS[2:]]),
    "final-chunk-spliced-from-another-stream": (HEADER, [*CHUNKS[:3], OTHER_CHUNKS[3]]),
    "chunks-under-another-header": (OTHER_HEADER, CHUNKS),
    "chunk-spliced-from-another-row": (HEADER, [CHUNKS[0], ROW_CHUNKS[1], *CHUNKS[2:]]),
    "another-rows-stream-under-its-own-header": (ROW_HEADER, ROW_CHUNKS),
    "empty-chunk-list": (HEADER, []),
    "empty-chunk": (HEADER, [*CHUNKS[:2], b"", *CHUNKS[2:]]),
    "chunk-truncated": (HEADER, [CHUNKS[0][:-1], *CHUNKS[1:]]),
    "final-chunk-truncated": (HEADER, [*CHUNKS[:3], CHUNKS[3][:-1]]),
    "chunk-extended": (HEADER, [CHUNKS[0] + b"\x00", *CHUNKS[1:]]),
    "chunks-read-one-byte-off": (HEADER, [SHIFTED[i : i + CS + 28] for i in range(0, len(SHIFTED), CS + 28)]),
}


@pytest.mark.parametrize("header, chunks", TAMPERED.values(), ids=TAMPERED.keys())
def test_tampered_stream_fails(header: bytes, chunks: list[bytes]) -> None:
    with pytest.raises(Unreadable):
        list(open_stream(KEY, PLACE, header, chunks))


def test_a_truncated_stream_fails_only_after_yielding_authentic_chunks() -> None:
    pieces = open_stream(KEY, PLACE, HEADER, CHUNKS[:-1])
    assert next(pieces) == PLAINTEXT[:CS]
    assert next(pieces) == PLAINTEXT[CS : 2 * CS]
    with pytest.raises(Unreadable, match="chunk 2"):
        next(pieces)


def test_an_empty_chunk_list_fails_when_consumed() -> None:
    pieces = open_stream(KEY, PLACE, HEADER, [])
    with pytest.raises(Unreadable, match="empty"):
        list(pieces)


CHUNK_BITS = {
    "nonce-first": 0,
    "nonce-last": 12 * 8 - 1,
    "body-first": 12 * 8,
    "body-middle": (12 + CS // 2) * 8 + 3,
    "body-last": (12 + CS) * 8 - 1,
    "tag-first": (12 + CS) * 8,
    "tag-last": (CS + 28) * 8 - 1,
}


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("bit", CHUNK_BITS.values(), ids=CHUNK_BITS.keys())
def test_a_flipped_bit_in_any_chunk_fails(index: int, bit: int) -> None:
    chunks = list(CHUNKS)
    chunks[index] = flipped(chunks[index], bit)
    with pytest.raises(Unreadable, match=f"chunk {index}"):
        list(open_stream(KEY, PLACE, HEADER, chunks))


@SETTINGS
@given(index=st.integers(min_value=0, max_value=3), bit=st.integers(min_value=0, max_value=(CS + 28) * 8 - 1))
def test_any_flipped_bit_in_any_chunk_fails(index: int, bit: int) -> None:
    chunks = list(CHUNKS)
    chunks[index] = flipped(chunks[index], bit)
    with pytest.raises(Unreadable):
        list(open_stream(KEY, PLACE, HEADER, chunks))


HEADER_CHANGES = {
    "chunk-size-doubled": HEADER[:2] + struct.pack(">I", 2 * CS) + HEADER[6:],
    "chunk-size-plus-one": HEADER[:2] + struct.pack(">I", CS + 1) + HEADER[6:],
    "chunk-size-too-small": HEADER[:2] + struct.pack(">I", 16) + HEADER[6:],
    "chunk-size-zero": HEADER[:2] + struct.pack(">I", 0) + HEADER[6:],
    "chunk-size-too-large": HEADER[:2] + struct.pack(">I", 2**32 - 1) + HEADER[6:],
    "salt-first-bit": flipped(HEADER, 6 * 8),
    "salt-last-bit": flipped(HEADER, 22 * 8 - 1),
    "salt-replaced": HEADER[:6] + OTHER_HEADER[6:],
    "magic": b"F" + HEADER[1:],
    "format": HEADER[:1] + b"\x02" + HEADER[2:],
    "truncated": HEADER[:-1],
    "extended": HEADER + b"\x00",
    "empty": b"",
}


@pytest.mark.parametrize("header", HEADER_CHANGES.values(), ids=HEADER_CHANGES.keys())
def test_a_changed_header_fails(header: bytes) -> None:
    with pytest.raises(Unreadable):
        list(open_stream(KEY, PLACE, header, CHUNKS))


def test_chunk_size_relabelled_with_chunks_of_that_size_fails() -> None:
    """Chunks of a 2048-byte stream under a header saying 2048 but the salt of a 1024-byte stream fail too."""
    header, chunks = seal(PLAINTEXT, chunk_size=2 * CS)
    relabelled = header[:6] + HEADER[6:]
    with pytest.raises(Unreadable):
        list(open_stream(KEY, PLACE, relabelled, chunks))


@pytest.mark.parametrize(
    "key, place",
    [
        (OpenDataKey(43, DATA_KEY), PLACE),
        (OpenDataKey(42, bytes(32)), PLACE),
        (KEY, Binding("attachments", "content", 10)),
        (KEY, Binding("attachments", "thumbnail", 9)),
        (KEY, Binding("evidence", "content", 9)),
    ],
    ids=["other-key-id", "other-key-bytes", "other-row", "other-field", "other-table"],
)
def test_stream_opened_with_another_key_or_place_fails(key: OpenDataKey, place: Binding) -> None:
    with pytest.raises(Unreadable, match="chunk 0"):
        list(open_stream(key, place, HEADER, CHUNKS))


def test_a_final_chunk_without_padding_marker_fails() -> None:
    """A correctly encrypted final chunk whose plaintext lacks the 0x80 marker is refused, not returned short."""
    aead = spec_stream_key(VECTOR_SALT, CS)
    header = b"S\x01" + CS.to_bytes(4, "big") + VECTOR_SALT
    chunks = [spec_chunk(aead, bytes(12), 0, True, bytes(CS))]
    with pytest.raises(Unreadable, match="malformed"):
        list(open_stream(KEY, PLACE, header, chunks))
    chunks = [spec_chunk(aead, bytes(12), 0, True, b"ok\x80" + bytes(CS - 3))]
    assert opened(header, chunks) == b"ok"


# -- fixed vectors ------------------------------------------------------------------------------------------------


def test_stream_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    nonces = iter(VECTOR_NONCES)
    monkeypatch.setattr("intake.core.crypto.stream.random_nonce", lambda: next(nonces))
    monkeypatch.setattr("intake.core.crypto.envelope.random_nonce", lambda: next(nonces))
    monkeypatch.setattr("intake.core.crypto.stream.os.urandom", lambda n: VECTOR_SALT[:n])
    sealer = stream.StreamSealer(KEY, PLACE, chunk_size=CS)
    chunks = sealer.feed(VECTOR_PLAINTEXT[:1000]) + sealer.feed(VECTOR_PLAINTEXT[1000:]) + [sealer.finish()]
    assert sealer.header.hex() == STREAM_HEADER_HEX
    assert [chunk.hex() for chunk in chunks] == [STREAM_CHUNK_0_HEX, STREAM_CHUNK_1_HEX]


def test_stream_vector_opens() -> None:
    chunks = [bytes.fromhex(STREAM_CHUNK_0_HEX), bytes.fromhex(STREAM_CHUNK_1_HEX)]
    assert parse_header(bytes.fromhex(STREAM_HEADER_HEX)) == (CS, VECTOR_SALT)
    assert opened(bytes.fromhex(STREAM_HEADER_HEX), chunks) == VECTOR_PLAINTEXT


def test_stream_vector_follows_the_documented_layout() -> None:
    header = b"S\x01" + CS.to_bytes(4, "big") + VECTOR_SALT
    aead = spec_stream_key(VECTOR_SALT, CS)
    padded_tail = VECTOR_PLAINTEXT[CS:] + b"\x80" + bytes(2 * CS - len(VECTOR_PLAINTEXT) - 1)
    chunks = [
        spec_chunk(aead, VECTOR_NONCES[0], 0, False, VECTOR_PLAINTEXT[:CS]),
        spec_chunk(aead, VECTOR_NONCES[1], 1, True, padded_tail),
    ]
    assert header.hex() == STREAM_HEADER_HEX
    assert [chunk.hex() for chunk in chunks] == [STREAM_CHUNK_0_HEX, STREAM_CHUNK_1_HEX]
