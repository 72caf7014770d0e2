"""The bundle archive: a tar stream encrypted with age, written and read as a stream.

Pure tests (no application, no database). The interoperability tests use Debian's `age`, `age-keygen` and GNU
`tar`; they skip when age is not installed, unless PYTEST_REQUIRE names it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from intake.exports.archive import (
    READ_CHUNK,
    ArchiveError,
    ArchiveWriter,
    FileEntry,
    InvalidIdentity,
    InvalidRecipient,
    Member,
    SizeMismatch,
    UnsafeName,
    iter_archive,
    parse_identities,
    parse_recipient,
    safe_name,
    write_archive,
)
from tests.conftest import missing

MTIME = 1_735_689_600  # 2025-01-01T00:00:00Z
IDENTITY = x25519.Identity.generate()
RECIPIENT = str(IDENTITY.to_public())
SECRET = str(IDENTITY)
OTHER = x25519.Identity.generate()
MIB = 1024 * 1024

FILES: dict[str, bytes] = {
    "manifest-first.txt": b"",
    "KB-7F3Q-2K/testimony.json": b'{"narrative": "..."}\n',
    "KB-7F3Q-2K/consent.json": b"{}" * 300,  # 600 bytes: crosses a block boundary
    "KB-7F3Q-2K/attachments/" + "ab" * 32 + ".pdf": os.urandom(70_000),  # several age chunks
    "exactly-one-block": b"x" * 512,
    "Témoignage – café/ünïcode.txt": "déjà vu".encode(),
    "long/" + "n" * 120 + "/" + "m" * 200: b"a name longer than ustar's 100 bytes",
}


def _members(files: dict[str, bytes], chunk: int = 4096) -> Iterator[Member]:
    for name, data in files.items():
        yield Member(name, len(data), (data[i:i + chunk] for i in range(0, len(data), chunk)))


def _read_all(encrypted: bytes, identities: Sequence[str] = (SECRET,)) -> dict[str, bytes]:
    return {m.name: m.file.read() for m in iter_archive(io.BytesIO(encrypted), list(identities))}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encrypted_tar(build: Callable[[tarfile.TarFile], None]) -> bytes:
    """An age-encrypted tar archive written by Python's tarfile, to try the reader on what we never write."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return pyrage.encrypt(plain.getvalue(), [IDENTITY.to_public()])


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
         linkname: str = "") -> tarfile.TarFile:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return tar


# ---------------------------------------------------------------------------------------------------------------
# Recipients, identities, names


def test_a_recipient_is_returned_stripped_and_in_lower_case() -> None:
    assert parse_recipient(f"  {RECIPIENT}\n") == RECIPIENT
    assert parse_recipient(RECIPIENT.upper()) == RECIPIENT


@pytest.mark.parametrize(("text", "message"), [
    ("", "starts with 'age1'"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", "starts with 'age1'"),
    (RECIPIENT[:-1], "copied whole"),
    (RECIPIENT + "q", "copied whole"),
    (RECIPIENT[:10] + ("q" if RECIPIENT[10] != "q" else "p") + RECIPIENT[11:], "copied whole"),  # bad checksum
    ("age1" + "q" * 58, "copied whole"),
    (SECRET, "secret key"),
    (SECRET.lower(), "secret key"),
])
def test_anything_but_an_age_x25519_recipient_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidRecipient, match=message):
        parse_recipient(text)


def test_an_archive_needs_a_valid_recipient() -> None:
    with pytest.raises(InvalidRecipient, match="at least one"):
        write_archive(io.BytesIO(), [], [])
    with pytest.raises(InvalidRecipient):
        ArchiveWriter(io.BytesIO(), [RECIPIENT, "age1nope"])


def test_identities_are_read_from_an_identity_file() -> None:
    text = f"# created: 2025-01-01T00:00:00Z\n# public key: {RECIPIENT}\n{SECRET}\n\n{OTHER}\n"
    assert parse_identities(text) == [SECRET, str(OTHER)]


def test_a_bad_identity_line_is_named_but_never_echoed() -> None:
    damaged = SECRET[:-3] + "qqq"
    with pytest.raises(InvalidIdentity, match="line 2") as caught:
        parse_identities(f"# comment\n{damaged}\n")
    assert damaged not in str(caught.value)
    with pytest.raises(InvalidIdentity, match="no age identity"):
        parse_identities("# only a comment\n")


@pytest.mark.parametrize("name", ["a", "a/b/c.json", "KB-7F3Q-2K/attachments/0f.pdf", "café/ü.txt", ".hidden",
                                  "a..b", "x" * 255])
def test_safe_names_are_accepted(name: str) -> None:
    assert safe_name(name) == name


@pytest.mark.parametrize("name", [
    "", "/etc/passwd", "../escape", "a/../../escape", "a/..", "./a", "a/./b", "a//b", "a/", "a\\b", "C:evil",
    "a\0b", "new\nline", "tab\there", "rtl\u202eoverride", "zero\u200bwidth", "e\u0301",  # not NFC
    "x" * 256, "/".join(["d"] * 600),
])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeName):
        safe_name(name)


# ---------------------------------------------------------------------------------------------------------------
# Writing and reading back


def test_a_pulled_archive_reads_back_file_by_file() -> None:
    out = io.BytesIO()
    result = write_archive(out, [RECIPIENT], _members(FILES), mtime=MTIME)
    assert [e.name for e in result.entries] == list(FILES)
    assert result.entries == [FileEntry(n, len(d), _sha(d)) for n, d in FILES.items()]
    assert result.size == len(out.getvalue()) and result.sha256 == _sha(out.getvalue())
    members = list(iter_archive(io.BytesIO(out.getvalue()), [SECRET]))
    assert [m.name for m in members] == list(FILES)
    assert {m.mtime for m in members} == {MTIME}
    assert _read_all(out.getvalue()) == FILES


def test_a_pushed_archive_reads_back_file_by_file() -> None:
    out = io.BytesIO()
    with ArchiveWriter(out, [RECIPIENT], mtime=MTIME, pipe_bytes=8192) as writer:
        for name, data in FILES.items():
            entry = writer.add_file(name, len(data), (data[i:i + 1000] for i in range(0, len(data), 1000)))
            assert entry == FileEntry(name, len(data), _sha(data))
        assert [e.name for e in writer.entries] == list(FILES)
    result = writer.close()  # already closed by the block: the same result again
    assert result.entries == [FileEntry(n, len(d), _sha(d)) for n, d in FILES.items()]
    assert result.sha256 == _sha(out.getvalue())
    assert _read_all(out.getvalue()) == FILES


def test_the_manifest_can_come_last_from_the_entries_written_before() -> None:
    def members(entries: Sequence[FileEntry]) -> Iterator[Member]:
        yield from _members(FILES)
        yield Member.from_bytes("manifest.json", "\n".join(f"{e.sha256} {e.size} {e.name}" for e in entries)
                                .encode())

    out = io.BytesIO()
    write_archive(out, [RECIPIENT], members)
    manifest = _read_all(out.getvalue())["manifest.json"].decode().split("\n")
    assert manifest == [f"{_sha(d)} {len(d)} {n}" for n, d in FILES.items()]


def test_every_recipient_can_decrypt() -> None:
    out = io.BytesIO()
    write_archive(out, [RECIPIENT, str(OTHER.to_public())], _members(FILES))
    assert _read_all(out.getvalue(), [str(OTHER)]) == FILES
    assert _read_all(out.getvalue(), [SECRET]) == FILES


def test_chunks_of_any_byte_type_are_accepted_and_copied() -> None:
    buffer = bytearray(b"first")
    out = io.BytesIO()
    with ArchiveWriter(out, [RECIPIENT]) as writer:
        writer.add_file("a", 10, [buffer, memoryview(b"12345")])
        buffer[:] = b"XXXXX"  # a producer reusing its buffer must not change what was written
        writer.add_bytes("b", bytearray(b"second"))
    assert _read_all(out.getvalue()) == {"a": b"first12345", "b": b"second"}


@pytest.mark.parametrize("chunks", [[b"12345"], [b"1234567"], [b"123456", b"7"]], ids=["short", "long", "long-later"])
def test_data_that_does_not_match_its_size_is_refused(chunks: list[bytes]) -> None:
    out = io.BytesIO()
    with pytest.raises(SizeMismatch, match="'a'"):
        write_archive(out, [RECIPIENT], [Member("a", 6, chunks)])
    with pytest.raises(ArchiveError):
        _read_all(out.getvalue())  # what was written is not a whole archive


def test_a_size_mismatch_abandons_a_pushed_archive() -> None:
    out = io.BytesIO()
    writer = ArchiveWriter(out, [RECIPIENT])
    writer.add_bytes("first", b"kept?")
    with pytest.raises(SizeMismatch):
        writer.add_file("second", 100, [b"too short"])
    with pytest.raises(ArchiveError, match="closed"):
        writer.add_bytes("third", b"")
    with pytest.raises(ArchiveError, match="abandoned"):
        writer.close()
    with pytest.raises(ArchiveError, match="could not be decrypted"):
        _read_all(out.getvalue())


def test_a_refused_name_leaves_a_pushed_archive_usable() -> None:
    out = io.BytesIO()
    with ArchiveWriter(out, [RECIPIENT]) as writer:
        writer.add_bytes("Report.json", b"1")
        with pytest.raises(UnsafeName):
            writer.add_bytes("../escape", b"2")
        with pytest.raises(UnsafeName, match="same name"):
            writer.add_bytes("report.JSON", b"3")
        with pytest.raises(SizeMismatch):
            writer.add_file("negative", -1, [])
        writer.add_bytes("other.json", b"4")
    assert _read_all(out.getvalue()) == {"Report.json": b"1", "other.json": b"4"}


class ProducerFailed(Exception):
    pass


def _failing_chunks() -> Iterator[bytes]:
    yield b"x" * 10_000
    raise ProducerFailed("the attachment could not be read")


def test_a_producers_own_exception_comes_through_a_pulled_archive() -> None:
    out = io.BytesIO()
    with pytest.raises(ProducerFailed, match="attachment"):
        write_archive(out, [RECIPIENT], [Member("a", 20_000, _failing_chunks())])
    with pytest.raises(ArchiveError):
        _read_all(out.getvalue())


def test_a_producers_own_exception_comes_through_a_pushed_archive_and_abandons_it() -> None:
    out = io.BytesIO()
    with pytest.raises(ProducerFailed), ArchiveWriter(out, [RECIPIENT]) as writer:
        writer.add_file("a", 20_000, _failing_chunks())
    assert not _alive("archive-encrypt")
    with pytest.raises(ArchiveError):
        _read_all(out.getvalue())


def test_an_exception_in_the_block_abandons_a_pushed_archive() -> None:
    out = io.BytesIO()
    with pytest.raises(ProducerFailed), ArchiveWriter(out, [RECIPIENT]) as writer:
        writer.add_bytes("a", b"written")
        raise ProducerFailed("the build was cancelled")
    with pytest.raises(ArchiveError):
        _read_all(out.getvalue())


class BrokenOutput(io.RawIOBase):
    def __init__(self, fail_after: int) -> None:
        self.left = fail_after

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.left -= len(data)
        if self.left < 0:
            raise OSError(28, "No space left on device")
        return len(data)


def test_an_output_failure_is_reported_as_itself() -> None:
    with pytest.raises(OSError, match="No space left"):
        write_archive(BrokenOutput(100_000), [RECIPIENT], [Member.from_bytes("a", os.urandom(300_000))])


def test_an_output_failure_stops_a_pushed_archive() -> None:
    writer = ArchiveWriter(BrokenOutput(100_000), [RECIPIENT], pipe_bytes=65536)
    with pytest.raises(ArchiveError, match="No space left") as caught:
        for i in range(100):
            writer.add_bytes(f"f{i}", os.urandom(65536))
        writer.close()
    assert isinstance(caught.value.__cause__, OSError)
    assert not _alive("archive-encrypt")


def test_partial_writes_of_a_raw_output_are_completed() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.data += bytes(data[:1000])
            return min(len(data), 1000)

    out = Trickle()
    write_archive(out, [RECIPIENT], _members(FILES))
    assert _read_all(bytes(out.data)) == FILES


# ---------------------------------------------------------------------------------------------------------------
# What the reader refuses


def test_a_wrong_identity_is_refused() -> None:
    out = io.BytesIO()
    write_archive(out, [RECIPIENT], _members(FILES))
    with pytest.raises(ArchiveError, match="could not be decrypted"):
        _read_all(out.getvalue(), [str(OTHER)])
    with pytest.raises(InvalidIdentity):
        _read_all(out.getvalue(), ["AGE-SECRET-KEY-1NOPE"])


def test_a_truncated_or_altered_archive_is_refused() -> None:
    out = io.BytesIO()
    write_archive(out, [RECIPIENT], _members(FILES))
    whole = out.getvalue()
    for damaged in (whole[:-1], whole[:len(whole) // 2], whole[:-16],
                    whole[:2000] + bytes([whole[2000] ^ 1]) + whole[2001:],
                    whole[:-5] + bytes([whole[-5] ^ 0x80]) + whole[-4:]):
        with pytest.raises(ArchiveError, match="could not be decrypted"):
            _read_all(damaged)


def test_the_reader_stops_cleanly_when_the_caller_stops_early() -> None:
    out = io.BytesIO()
    write_archive(out, [RECIPIENT], (Member.from_bytes(f"f{i}", os.urandom(50_000)) for i in range(100)))
    members = iter_archive(io.BytesIO(out.getvalue()), [SECRET])
    first = next(members)
    assert first.name == "f0"
    assert _alive("archive-decrypt")
    members.close()
    assert not _alive("archive-decrypt")


@pytest.mark.parametrize(("build", "message"), [
    (lambda tar: _add(tar, "../escape", b"x"), "unsafe name"),
    (lambda tar: _add(tar, "/etc/cron.d/evil", b"x"), "unsafe name"),
    (lambda tar: _add(tar, "link", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), "link or a special file"),
    (lambda tar: (_add(tar, "a", b"x"), _add(tar, "b", kind=tarfile.LNKTYPE, linkname="a")),
     "link or a special file"),
    (lambda tar: _add(tar, "dev", kind=tarfile.CHRTYPE), "link or a special file"),
    (lambda tar: _add(tar, "fifo", kind=tarfile.FIFOTYPE), "link or a special file"),
    (lambda tar: (_add(tar, "same", b"1"), _add(tar, "SAME", b"2")), "same name"),
])
def test_the_reader_refuses_what_would_not_extract_safely(build: Callable[[tarfile.TarFile], None],
                                                          message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        _read_all(_encrypted_tar(build))


def test_a_file_cut_short_inside_a_whole_age_stream_is_refused() -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        _add(tar, "a", b"a" * 5000)
    cut = plain.getvalue()[:512 + 2048]  # the header and part of the data
    with pytest.raises(ArchiveError, match="cut short"):
        _read_all(pyrage.encrypt(cut, [IDENTITY.to_public()]))
    with pytest.raises(ArchiveError, match="damaged"):  # the reader moving on without reading the data
        list(iter_archive(io.BytesIO(pyrage.encrypt(cut, [IDENTITY.to_public()])), [SECRET]))


def test_the_reader_skips_directories_and_a_leading_dot_slash() -> None:
    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "./", kind=tarfile.DIRTYPE)
        _add(tar, "./dir", kind=tarfile.DIRTYPE)
        _add(tar, "./dir/a.txt", b"a")

    assert _read_all(_encrypted_tar(build)) == {"dir/a.txt": b"a"}


def test_the_reader_refuses_what_is_not_a_tar_archive_or_has_data_after_its_end() -> None:
    with pytest.raises(ArchiveError, match="not a tar archive"):
        _read_all(pyrage.encrypt(b"just some text, no tar here" * 100, [IDENTITY.to_public()]))
    with pytest.raises(ArchiveError, match="not a tar archive"):
        _read_all(pyrage.encrypt(b"", [IDENTITY.to_public()]))
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        _add(tar, "a", b"a")
    hidden = plain.getvalue() + b"hidden data after the end"
    with pytest.raises(ArchiveError, match="after its end"):
        _read_all(pyrage.encrypt(hidden, [IDENTITY.to_public()]))


# ---------------------------------------------------------------------------------------------------------------
# Memory stays bounded whatever the size


class Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


BLOCK = os.urandom(MIB)
STREAMED = 64 * MIB
BOUND = 8 * MIB  # far below the size streamed, and below what holding it would take


def _big() -> Iterator[bytes]:
    """Fresh chunks, as a real producer makes them (holding on to them would cost memory)."""
    for _ in range(STREAMED // MIB):
        yield bytes(bytearray(BLOCK))


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writing_a_large_archive_holds_little_memory() -> None:
    assert _peak(lambda: write_archive(Discard(), [RECIPIENT], [Member("big", STREAMED, _big())])) < BOUND

    def push() -> None:
        with ArchiveWriter(Discard(), [RECIPIENT]) as writer:
            writer.add_file("big", STREAMED, _big())

    assert _peak(push) < BOUND


def test_reading_a_large_archive_holds_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.tar.age"
    with path.open("wb") as out:
        write_archive(out, [RECIPIENT], [Member("big", STREAMED, _big())])

    def read() -> None:
        with path.open("rb") as encrypted:
            for member in iter_archive(encrypted, [SECRET]):
                chunks = member.chunks()
                next(chunks)
                # A slow reader: decryption must wait for it rather than run ahead into memory.
                time.sleep(0.5)
                assert sum(len(chunk) for chunk in chunks) == STREAMED - READ_CHUNK

    assert _peak(read) < BOUND


# ---------------------------------------------------------------------------------------------------------------
# Interoperability with age 1.1 and GNU tar


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing("age", f"there is no {name} executable on PATH (Debian package age)")
    assert path is not None
    return path


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), input=stdin, capture_output=True, timeout=120, check=False)  # noqa: S603


@pytest.fixture()
def keygen_identity(tmp_path: Path) -> tuple[Path, str]:
    """An identity file made by age-keygen, and its recipient."""
    path = tmp_path / "identity.txt"
    result = _run(_tool("age-keygen"), "-o", str(path))
    assert result.returncode == 0, result.stderr
    recipient = _run(_tool("age-keygen"), "-y", str(path)).stdout.decode().strip()
    return path, recipient


def test_age_and_tar_list_and_extract_our_archive(tmp_path: Path, keygen_identity: tuple[Path, str]) -> None:
    identity, recipient = keygen_identity
    bundle = tmp_path / "bundle.tar.age"
    with bundle.open("wb") as out:
        result = write_archive(out, [parse_recipient(recipient)], _members(FILES), mtime=MTIME)
    plain = tmp_path / "bundle.tar"
    decrypted = _run(_tool("age"), "-d", "-i", str(identity), "-o", str(plain), str(bundle))
    assert decrypted.returncode == 0, decrypted.stderr
    tar = shutil.which("tar") or "tar"
    listed = _run(tar, "-tf", str(plain))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.decode().splitlines() == list(FILES)
    target = tmp_path / "extracted"
    target.mkdir()
    extracted = _run(tar, "-xf", str(plain), "-C", str(target))
    assert extracted.returncode == 0 and extracted.stderr == b"", extracted.stderr
    for entry in result.entries:
        path = target / entry.name
        assert _sha(path.read_bytes()) == entry.sha256
        assert path.stat().st_size == entry.size
        assert int(path.stat().st_mtime) == MTIME


def test_our_identity_file_decrypts_with_age(tmp_path: Path) -> None:
    _tool("age")
    identity = tmp_path / "key.txt"
    identity.write_text(f"# made by pyrage\n{SECRET}\n", encoding="utf-8")
    bundle = tmp_path / "bundle.tar.age"
    with bundle.open("wb") as out:
        with ArchiveWriter(out, [RECIPIENT]) as writer:
            writer.add_bytes("a.txt", b"pushed")
    decrypted = _run(_tool("age"), "-d", "-i", str(identity), str(bundle))
    assert decrypted.returncode == 0, decrypted.stderr
    with tarfile.open(fileobj=io.BytesIO(decrypted.stdout)) as tar:
        member = tar.extractfile("a.txt")
        assert member is not None and member.read() == b"pushed"


def test_age_refuses_an_abandoned_archive(tmp_path: Path) -> None:
    _tool("age")
    identity = tmp_path / "key.txt"
    identity.write_text(SECRET + "\n", encoding="utf-8")
    bundle = tmp_path / "bundle.tar.age"
    with bundle.open("wb") as out, pytest.raises(SizeMismatch):
        write_archive(out, [RECIPIENT], [Member("a", 200_000, [os.urandom(150_000)])])
    assert _run(_tool("age"), "-d", "-i", str(identity), str(bundle)).returncode != 0


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
def test_a_tar_made_by_tar_and_encrypted_by_age_reads_here(tmp_path: Path, keygen_identity: tuple[Path, str],
                                                           armor: bool) -> None:
    identity, recipient = keygen_identity
    source = tmp_path / "case"
    (source / "KB-1" / "attachments").mkdir(parents=True)
    files = {"KB-1/testimony.json": b'{"a": 1}', "KB-1/attachments/photo.jpg": os.urandom(200_000),
             "VERIFY.txt": b"how to check this bundle\n"}
    for name, data in files.items():
        (source / name).write_bytes(data)
    plain = tmp_path / "case.tar"
    made = _run(shutil.which("tar") or "tar", "-cf", str(plain), "-C", str(source), ".")
    assert made.returncode == 0, made.stderr
    bundle = tmp_path / "case.tar.age"
    encrypted = _run(_tool("age"), *(["-a"] if armor else []), "-r", recipient, "-o", str(bundle), str(plain))
    assert encrypted.returncode == 0, encrypted.stderr
    identities = parse_identities(identity.read_text(encoding="utf-8"))
    with bundle.open("rb") as f:
        read = {m.name: _sha(m.file.read()) for m in iter_archive(f, identities)}
    assert read == {name: _sha(data) for name, data in files.items()}


def _alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())
