"""Tests for the encrypted request spool: what is written reads back from anywhere, small bodies never reach the
disk, and what does reach the disk never holds the plaintext."""

from __future__ import annotations

import io
import itertools
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import example, given, settings
from hypothesis import strategies as st

from intake.core.crypto import spool as spool_module
from intake.core.crypto.spool import EncryptedSpool

SETTINGS = settings(max_examples=75, deadline=None, database=None)
CHUNK = 64 * 1024
SENTINEL = "SENTINEL-Ճշմարտություն-правда-həqiqət-".encode()


def pieces_of(data: bytes, lengths: Sequence[int]) -> Iterator[bytes]:
    """`data` cut into pieces of the given lengths (cycled; zero-length pieces included), the rest as one piece."""
    position = 0
    cycle = itertools.cycle(lengths) if any(lengths) else iter(())
    for length in cycle:
        if position >= len(data):
            break
        yield data[position : position + length]
        position += length
    yield data[position:]


def filled(data: bytes, lengths: Sequence[int], *, chunk_size: int = CHUNK) -> EncryptedSpool:
    spool = EncryptedSpool(chunk_size=chunk_size)
    for piece in pieces_of(data, lengths):
        assert spool.write(piece) == len(piece)
    return spool


class TempFiles:
    """A stand-in for `tempfile.TemporaryFile` that keeps every file it makes, named, in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: list[tuple[Path, IO[bytes]]] = []

    def __call__(self, *args: Any, dir: str | None = None, **kwargs: Any) -> IO[bytes]:
        path = Path(dir or self.directory) / f"spool-{len(self.made)}.bin"
        file = path.open("w+b")
        self.made.append((path, file))
        return file


@pytest.fixture
def temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TempFiles:
    made = TempFiles(tmp_path)
    monkeypatch.setattr(spool_module.tempfile, "TemporaryFile", made)
    return made


# -- reading back ------------------------------------------------------------------------------------------------


@SETTINGS
@given(
    data=st.binary(max_size=4000),
    chunk_size=st.integers(min_value=1, max_value=300),
    lengths=st.lists(st.integers(min_value=0, max_value=700), max_size=10),
    reads=st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=10),
)
@example(data=bytes(1000), chunk_size=7, lengths=[0], reads=[1])
def test_written_in_pieces_reads_back_in_pieces(
    data: bytes, chunk_size: int, lengths: list[int], reads: list[int]
) -> None:
    with filled(data, lengths, chunk_size=chunk_size) as spool:
        assert spool.tell() == len(data)
        assert spool.seek(0) == 0
        out = bytearray()
        for index in range(len(data) + 1):
            size = reads[index % len(reads)]
            piece = spool.read(size)
            assert len(piece) == min(size, len(data) - len(out))
            if not piece:
                break
            out += piece
            assert spool.tell() == len(out)
        assert bytes(out) == data
        assert spool.read(10) == b""
        assert spool.read() == b""


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("seek"), st.integers(min_value=0, max_value=5000), st.just(io.SEEK_SET)),
        st.tuples(st.just("seek"), st.integers(min_value=-400, max_value=400), st.just(io.SEEK_CUR)),
        st.tuples(st.just("seek"), st.integers(min_value=-4000, max_value=100), st.just(io.SEEK_END)),
        st.tuples(st.just("read"), st.integers(min_value=-1, max_value=1200), st.just(0)),
        st.tuples(st.just("readinto"), st.integers(min_value=0, max_value=1200), st.just(0)),
    ),
    max_size=20,
)


@SETTINGS
@given(data=st.binary(max_size=4000), chunk_size=st.integers(min_value=1, max_value=500), operations=OPERATIONS)
def test_seeks_and_reads_behave_like_an_ordinary_file(
    data: bytes, chunk_size: int, operations: list[tuple[str, int, int]]
) -> None:
    model = io.BytesIO()
    model.write(data)  # like the spool, the model is left at the end of what was written
    with filled(data, [97], chunk_size=chunk_size) as spool:
        for operation, number, whence in operations:
            if operation == "seek":
                target = {io.SEEK_SET: 0, io.SEEK_CUR: model.tell(), io.SEEK_END: len(data)}[whence] + number
                if target < 0:
                    continue  # see test_seeking_before_the_start_fails
                assert spool.seek(number, whence) == model.seek(number, whence) == target
            elif operation == "read":
                assert spool.read(number) == model.read(number)
            else:
                mine, theirs = bytearray(number), bytearray(number)
                assert spool.readinto(mine) == model.readinto(theirs)
                assert mine == theirs
            assert spool.tell() == model.tell()


@pytest.mark.parametrize("length", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])
def test_lengths_around_chunk_boundaries_read_back(length: int) -> None:
    data = bytes(i % 253 for i in range(length))
    with filled(data, [CHUNK - 1, 1, 5000]) as spool:
        assert spool.tell() == length
        spool.seek(0)
        assert spool.read() == data
        for position in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, length - 1, length, length + 5):
            if position < 0:
                continue
            spool.seek(position)
            assert spool.read(CHUNK + 2) == data[position : position + CHUNK + 2]
            assert spool.tell() == (min(length, position + CHUNK + 2) if position <= length else position)


def test_it_is_a_readable_seekable_binary_file() -> None:
    data = b"line one\nline two\n" * 5000
    with filled(data, [1000]) as spool:
        assert spool.readable()
        assert spool.seekable()
        assert spool.seek(-18, io.SEEK_END) == len(data) - 18
        assert spool.readline() == b"line one\n"
        spool.seek(0)
        copy = io.BytesIO()
        shutil.copyfileobj(spool, copy, 4096)  # as werkzeug's FileStorage.save does
        assert copy.getvalue() == data
        spool.seek(0)
        assert io.BufferedReader(spool).read() == data


def test_write_accepts_any_bytes_like_object() -> None:
    with EncryptedSpool(chunk_size=4) as spool:
        assert spool.write(bytearray(b"ab")) == 2
        assert spool.write(memoryview(b"cdefgh")) == 6
        assert spool.write(memoryview(b"XijX")[1:3]) == 2
        assert spool.write(b"") == 0
        spool.seek(0)
        assert spool.read() == b"abcdefghij"


def test_seeking_before_the_start_fails() -> None:
    with filled(b"0123456789", [3]) as spool:
        spool.seek(4)
        for offset, whence in ((-1, io.SEEK_SET), (-5, io.SEEK_CUR), (-11, io.SEEK_END)):
            with pytest.raises(ValueError):
                spool.seek(offset, whence)
            assert spool.tell() == 4
        with pytest.raises(ValueError):
            spool.seek(0, 3)
        assert spool.read(2) == b"45"


# -- write once, then read -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["read", "seek", "readinto", "read-at-end"])
def test_writing_after_reading_started_fails(start: str) -> None:
    with filled(b"x" * (CHUNK + 10), [CHUNK // 3]) as spool:
        assert spool.writable()
        if start == "read":
            spool.seek(0)
            spool.read(5)
        elif start == "seek":
            spool.seek(3)
        elif start == "readinto":
            spool.readinto(bytearray(4))
        else:
            assert spool.read(5) == b""  # reading at the end, without a seek, also ends writing
        assert not spool.writable()
        with pytest.raises(io.UnsupportedOperation):
            spool.write(b"more")
        with pytest.raises(io.UnsupportedOperation):
            spool.write(b"")
        spool.seek(0)
        assert spool.read() == b"x" * (CHUNK + 10)


def test_a_closed_spool_can_be_neither_read_nor_written() -> None:
    spool = filled(b"abc", [1])
    spool.close()
    assert spool.closed
    with pytest.raises(ValueError):
        spool.write(b"d")
    with pytest.raises(ValueError):
        spool.read(1)
    spool.close()  # closing twice is harmless


# -- what reaches the disk -----------------------------------------------------------------------------------------


def test_small_bodies_never_reach_the_disk(temp_files: TempFiles) -> None:
    data = bytes(i % 256 for i in range(CHUNK - 1))
    with filled(data, [1000, 1, 0, 7]) as spool:
        spool.seek(0)
        assert spool.read() == data
        spool.seek(100)
        assert spool.read(10) == data[100:110]
    assert temp_files.made == []


def test_a_full_chunk_is_the_first_to_reach_the_disk(temp_files: TempFiles) -> None:
    with EncryptedSpool() as spool:
        spool.write(bytes(CHUNK - 1))
        assert temp_files.made == []
        spool.write(b"\x00")
        assert len(temp_files.made) == 1
        spool.write(bytes(5 * CHUNK))
        assert len(temp_files.made) == 1


def test_what_reaches_the_disk_is_encrypted(temp_files: TempFiles) -> None:
    data = (SENTINEL * (300 * 1024 // len(SENTINEL) + 1))[: 300 * 1024]
    with filled(data, [4096, 1, 70_000, 333]) as spool:
        spool.seek(0)
        assert spool.read() == data
        spool.seek(CHUNK - 3)
        assert spool.read(len(SENTINEL) * 2) == data[CHUNK - 3 : CHUNK - 3 + len(SENTINEL) * 2]
        [(path, file)] = temp_files.made
    assert file.closed  # closing the spool closes (and so, for a real TemporaryFile, deletes) its file
    raw = path.read_bytes()
    full_chunks = len(data) // CHUNK
    assert len(raw) == full_chunks * (CHUNK + 16)  # the partial last chunk stayed in memory
    assert SENTINEL not in raw
    assert SENTINEL[:8] not in raw
    assert data[full_chunks * CHUNK :] not in raw


def test_each_spool_has_a_key_of_its_own(temp_files: TempFiles) -> None:
    data = SENTINEL * (2 * CHUNK // len(SENTINEL) + 1)
    for _ in range(2):
        with filled(data, [CHUNK]) as spool:
            spool.seek(0)
            assert spool.read() == data
    (first, _), (second, _) = temp_files.made
    first_raw, second_raw = first.read_bytes(), second.read_bytes()
    assert len(first_raw) == len(second_raw) == 2 * (CHUNK + 16)
    assert first_raw[: CHUNK + 16] != second_raw[: CHUNK + 16]


def test_altered_bytes_on_disk_are_never_returned(temp_files: TempFiles) -> None:
    data = b"a" * (2 * CHUNK + 5)
    with filled(data, [CHUNK]) as spool:
        [(path, file)] = temp_files.made
        file.seek(CHUNK + 16 + 100)
        file.write(b"\xff")
        file.flush()
        spool.seek(0)
        assert spool.read(CHUNK) == data[:CHUNK]
        with pytest.raises(InvalidTag):
            spool.read(CHUNK)


def test_the_spool_goes_to_the_directory_it_is_given(tmp_path: Path, temp_files: TempFiles) -> None:
    directory = tmp_path / "spools"
    directory.mkdir()
    with EncryptedSpool(directory=str(directory)) as spool:
        spool.write(bytes(2 * CHUNK))
        spool.seek(0)
        assert spool.read() == bytes(2 * CHUNK)
    [(path, _)] = temp_files.made
    assert path.parent == directory
    assert path.stat().st_size == 2 * (CHUNK + 16)


def test_the_real_temporary_file_works_and_leaves_nothing_behind(tmp_path: Path) -> None:
    data = SENTINEL * (3 * CHUNK // len(SENTINEL))
    with EncryptedSpool(directory=str(tmp_path)) as spool:
        spool.write(data)
        spool.seek(0)
        assert spool.read() == data
    assert list(tmp_path.iterdir()) == []


def test_equal_chunks_encrypt_differently(temp_files: TempFiles) -> None:
    """No nonce repeats under a spool's key: two identical chunks of plaintext never look alike on disk."""
    with filled(bytes(3 * CHUNK), [CHUNK]) as spool:
        spool.seek(0)
        assert spool.read() == bytes(3 * CHUNK)
    [(path, _)] = temp_files.made
    raw = path.read_bytes()
    sealed = [raw[i * (CHUNK + 16) : (i + 1) * (CHUNK + 16)] for i in range(3)]
    assert len(set(sealed)) == 3
    assert len({chunk[:32] for chunk in sealed}) == 3
