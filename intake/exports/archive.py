"""The bundle archive: a tar stream encrypted to the recipients with age (X25519), written and read as a stream.

A recipient needs only the standard tools: ``age -d -i key.txt bundle.tar.age | tar -x``. The tar stream (POSIX
pax format; plain ustar headers wherever a name fits) is produced member by member, and pyrage encrypts it as it
is produced, so memory stays bounded whatever the size of the bundle: the archive never exists in memory or in
clear on disk.

`pyrage.encrypt_io` pulls its input: it calls ``read(8192)`` on the reader until that returns ``b""``, encrypting
and writing 64 KiB age chunks as it goes (and holding the GIL while it encrypts). Two ways of feeding it:

- `write_archive` (pull, one thread): the members come from an iterable (typically a generator), and the tar
  stream is generated from them while pyrage reads. The fastest: nothing crosses a thread.
- `ArchiveWriter` (push): ``add_file`` and ``add_bytes`` called one after the other, as a context manager.
  Encryption runs in a worker thread that reads from a bounded in-memory pipe (at most `PIPE_BYTES` plus one chunk
  waiting), so a slow output blocks the producer instead of filling memory. The hand-over costs a little; it
  gains no parallelism, since pyrage keeps the GIL.

Small pieces (headers, padding, small files) are gathered into chunks of `GATHER` bytes on the way, so that many
small files cost few calls. Most of the time beyond age's own goes into the two SHA-256 digests (of each file, and
of the encrypted output).

Both record each member's name, size and SHA-256 as it passes (`FileEntry`), so a manifest can be written last,
and both report the size and SHA-256 of the encrypted output. If anything fails half-way the output is incomplete
and must be discarded; an age stream cut short does not decrypt, so it cannot pass for a whole bundle.

`iter_archive` reads one back in a stream (decryption in a worker thread, the same bounded pipe), yielding each
file in archive order without writing anything in clear to disk. Member names are checked by `safe_name` both
ways: relative paths of plain components only, which extract safely anywhere.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, BinaryIO, Protocol, cast

import pyrage
from pyrage import x25519

__all__ = [
    "ArchiveError",
    "ArchiveMember",
    "ArchiveResult",
    "ArchiveWriter",
    "FileEntry",
    "InvalidIdentity",
    "InvalidRecipient",
    "Member",
    "Output",
    "SizeMismatch",
    "UnsafeName",
    "iter_archive",
    "parse_identities",
    "parse_recipient",
    "safe_name",
    "write_archive",
]

BLOCK = tarfile.BLOCKSIZE
PIPE_BYTES = 1024 * 1024
READ_CHUNK = 64 * 1024
GATHER = 64 * 1024  # small pieces (headers, padding, small files) are gathered into chunks of about this size
MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255
FILE_MODE = 0o644
Chunk = bytes | bytearray | memoryview


class Output(Protocol):
    """Where an archive is written: a binary file, or anything with ``write`` and ``flush`` like one."""

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...


class InvalidRecipient(ValueError):
    """Not an age X25519 recipient (a public key ``age1...``)."""


class InvalidIdentity(ValueError):
    """Not an age X25519 identity (a secret key ``AGE-SECRET-KEY-1...``)."""


class ArchiveError(Exception):
    """The archive could not be written or read."""


class UnsafeName(ArchiveError, ValueError):
    """A member name that is not a safe relative path."""


class SizeMismatch(ArchiveError):
    """A member's data did not add up to the size declared for it."""


# ---------------------------------------------------------------------------------------------------------------
# Keys and names


def parse_recipient(text: str) -> str:
    """The age X25519 recipient in `text` (surrounding whitespace removed), or `InvalidRecipient`.

    Only X25519 public keys (``age1`` followed by 58 Bech32 characters) are accepted: not SSH keys, not plugin,
    tag or post-quantum recipients, and not secret keys pasted by mistake. Returned in lower case, as age writes it.
    """
    candidate = text.strip()
    if candidate.isupper():  # Bech32 may be written all in upper case; age writes it in lower case
        candidate = candidate.lower()
    if candidate.upper().startswith("AGE-SECRET-KEY-"):
        raise InvalidRecipient("this is an age secret key, not a recipient: give the public key (age1...) instead, "
                               "and treat the secret key as disclosed")
    if not candidate.startswith("age1"):
        raise InvalidRecipient("an age recipient starts with 'age1'")
    try:
        x25519.Recipient.from_str(candidate)
    except Exception:  # pyrage raises RecipientError or ValueError depending on what is wrong
        raise InvalidRecipient("not a valid age X25519 recipient (age1 followed by 58 characters); "
                               "check that it was copied whole") from None
    return candidate


def _recipients(recipients: Sequence[str]) -> list[x25519.Recipient]:
    if isinstance(recipients, str):
        raise TypeError("recipients is a list of strings")
    if not recipients:
        raise InvalidRecipient("an archive needs at least one recipient")
    return [x25519.Recipient.from_str(parse_recipient(r)) for r in recipients]


def parse_identities(text: str) -> list[str]:
    """The age X25519 identities in an identity file's text (as ``age-keygen`` writes it, ``#`` lines ignored).

    Raises `InvalidIdentity`, naming the line but never echoing it.
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            x25519.Identity.from_str(line)
        except Exception:  # pyrage raises IdentityError or ValueError depending on what is wrong
            raise InvalidIdentity(f"line {number} is not an age X25519 identity (AGE-SECRET-KEY-1...)") from None
        found.append(line)
    if not found:
        raise InvalidIdentity("no age identity found")
    return found


def safe_name(name: str) -> str:
    """`name` if it is a safe relative path inside an archive, else `UnsafeName`.

    Safe: components separated by ``/``, none empty, ``.`` or ``..``; not absolute; no backslash, no colon (a
    drive or an alternate data stream on Windows), no control, format or separator characters (which includes
    bidirectional overrides); in Unicode NFC; at most 255 bytes a component and 1024 in all.
    """
    if not isinstance(name, str) or not name:
        raise UnsafeName("a member name must be a non-empty string")
    if name.startswith("/"):
        raise UnsafeName("a member name must be relative, not start with '/'")
    if "\\" in name or ":" in name:
        raise UnsafeName("a member name must not contain a backslash or a colon")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in name):
        raise UnsafeName("a member name must not contain control or invisible characters")
    if unicodedata.normalize("NFC", name) != name:
        raise UnsafeName("a member name must be in Unicode normal form C")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeName(f"a member name must be at most {MAX_NAME_BYTES} bytes long")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise UnsafeName("a member name must not have empty, '.' or '..' components")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafeName(f"each part of a member name must be at most {MAX_COMPONENT_BYTES} bytes long")
    return name


# ---------------------------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class FileEntry:
    """A file as it went into the archive."""

    name: str
    size: int
    sha256: str  # hex


@dataclass(frozen=True)
class Member:
    """A file to put in the archive: `chunks` must add up to exactly `size` bytes.

    `mtime` (seconds since the epoch) defaults to the archive's.
    """

    name: str
    size: int
    chunks: Iterable[Chunk]
    mtime: int | None = None

    @classmethod
    def from_bytes(cls, name: str, data: Chunk, mtime: int | None = None) -> Member:
        return cls(name=name, size=memoryview(data).nbytes, chunks=(data,), mtime=mtime)


@dataclass(frozen=True)
class ArchiveResult:
    """What was written: the files in order, and the encrypted output's size and SHA-256 (hex)."""

    entries: list[FileEntry]
    size: int
    sha256: str


class _TarStream:
    """The bytes of a tar archive, member by member; checks names and sizes and records each `FileEntry`."""

    def __init__(self, mtime: int | None) -> None:
        self.mtime = int(time.time()) if mtime is None else int(mtime)
        self.entries: list[FileEntry] = []
        self._names: set[str] = set()
        self.ended = False

    def member(self, name: str, size: int, chunks: Iterable[Chunk], mtime: int | None) -> Iterator[bytes]:
        """The header, the data and the padding of one member; the `FileEntry` is recorded once all has passed.

        The name and size are checked at once (`UnsafeName`, `SizeMismatch`), before anything is produced.
        """
        if self.ended:
            raise ArchiveError("the archive is already closed")
        safe_name(name)
        folded = name.casefold()
        if folded in self._names:
            raise UnsafeName("two members would have the same name (names are compared without regard to case)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise SizeMismatch("a member's size must be a non-negative integer")
        self._names.add(folded)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self.mtime if mtime is None else int(mtime)
        info.mode = FILE_MODE
        info.type = tarfile.REGTYPE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return self._member(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"), name, size, chunks)

    def _member(self, header: bytes, name: str, size: int, chunks: Iterable[Chunk]) -> Iterator[bytes]:
        yield header
        digest = hashlib.sha256()
        seen = 0
        for chunk in chunks:
            if not chunk:
                continue
            data = chunk if type(chunk) is bytes else bytes(chunk)
            seen += len(data)
            if seen > size:
                raise SizeMismatch(f"member {name!r} has more data than its declared size of {size} bytes")
            digest.update(data)
            yield data
        if seen != size:
            raise SizeMismatch(f"member {name!r} has {seen} bytes of data, not its declared {size}")
        if size % BLOCK:
            yield bytes(BLOCK - size % BLOCK)
        self.entries.append(FileEntry(name=name, size=size, sha256=digest.hexdigest()))

    def end(self) -> bytes:
        """The end-of-archive marker: two zero blocks."""
        self.ended = True
        return bytes(2 * BLOCK)


class _Gatherer:
    """Gathers small pieces into chunks of at least `GATHER` bytes; larger pieces pass through as they are.

    Fewer, larger chunks mean fewer calls from pyrage into Python and fewer hand-overs between threads.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def add(self, piece: bytes) -> Iterator[bytes]:
        if len(piece) >= GATHER:
            yield from self.flush()
            yield piece
            return
        self._pending += piece
        if len(self._pending) >= GATHER:
            yield from self.flush()

    def flush(self) -> Iterator[bytes]:
        if self._pending:
            chunk = bytes(self._pending)
            self._pending.clear()
            yield chunk


class _ChunkReader(io.BufferedIOBase):
    """A readable stream over an iterator of non-empty byte chunks, as pyrage and tarfile pull it.

    `read(n)` returns at most `n` bytes, and fewer when the current chunk ends (both read until ``b""``). An
    exception raised by the iterator is kept in `error` and raised again by every later read: pyrage turns it into
    an `EncryptError` carrying only its text, and the caller re-raises the original.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._chunk = b""
        self._offset = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.error is not None:
            raise self.error
        if self._offset >= len(self._chunk):
            try:
                self._chunk = next(self._chunks, b"")
            except BaseException as exc:
                self.error = exc
                raise
            self._offset = 0
            if not self._chunk:
                return b""
        start = self._offset
        if size is None or size < 0 or (start == 0 and size >= len(self._chunk)):
            self._offset = len(self._chunk)
            return self._chunk[start:] if start else self._chunk
        self._offset = min(start + size, len(self._chunk))
        return self._chunk[start:self._offset]

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)


class _HashingWriter(io.BufferedIOBase):
    """Passes writes on to `out`, counting and hashing them; keeps `out`'s own error to re-raise it."""

    def __init__(self, out: Output) -> None:
        super().__init__()
        self._out = out
        self._digest = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None
        self._closing = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        try:
            written = self._out.write(data)
            if written is not None and written < len(data):  # a raw stream may write part of it
                rest = data[written:]
                while rest:
                    more = self._out.write(rest)
                    if not more:
                        raise OSError("the archive output stopped accepting data")
                    rest = rest[more:]
        except BaseException as exc:
            self.error = exc
            raise
        self._digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        if self._closing:
            return
        try:
            self._out.flush()
        except BaseException as exc:
            self.error = exc
            raise

    def close(self) -> None:
        # Closing (also when garbage collected) neither flushes nor closes `out`, which belongs to the caller.
        self._closing = True
        super().close()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _encrypt(reader: _ChunkReader, writer: _HashingWriter, recipients: list[x25519.Recipient]) -> None:
    """Run pyrage over `reader`, re-raising the producer's or the output's own exception rather than pyrage's."""
    try:
        pyrage.encrypt_io(reader, writer, recipients)
    except pyrage.EncryptError as exc:
        if reader.error is not None:
            raise reader.error from None
        if writer.error is not None:
            raise writer.error from None
        raise ArchiveError(f"age encryption failed: {exc}") from None
    writer.flush()


Members = Iterable[Member] | Callable[[Sequence[FileEntry]], Iterable[Member]]


def write_archive(out: Output, recipients: Sequence[str], members: Members, *,
                  mtime: int | None = None) -> ArchiveResult:
    """Write `members` as a tar archive encrypted to `recipients` (age X25519 public keys) to `out`.

    `members` is consumed lazily while the output is written, each member's chunks before the next member is
    asked for. It is an iterable of `Member`, or a function (typically a generator function) called with the
    entries written so far, a sequence that grows as the archive is written: so it can yield a manifest of them
    last. Raises `InvalidRecipient`, `UnsafeName`, `SizeMismatch`, or whatever the members' iterables or `out`
    raise; once anything was written, a failure leaves the output incomplete, to be discarded.
    """
    keys = _recipients(recipients)
    tar = _TarStream(mtime)
    source = members(tar.entries) if callable(members) else members

    def stream() -> Iterator[bytes]:
        gather = _Gatherer()
        for member in source:
            for piece in tar.member(member.name, member.size, member.chunks, member.mtime):
                yield from gather.add(piece)
        yield from gather.add(tar.end())
        yield from gather.flush()

    writer = _HashingWriter(out)
    _encrypt(_ChunkReader(stream()), writer, keys)
    return ArchiveResult(entries=list(tar.entries), size=writer.size, sha256=writer.hexdigest())


class _PipeClosed(Exception):
    """The reading end of a `_Pipe` stopped."""


@dataclass
class _Pipe:
    """A bounded queue of byte chunks between two threads: `put` blocks while `limit` bytes or more wait.

    At most `limit` bytes plus one chunk are held. The producer ends with `finish`, or with `abandon(error)`, which
    makes the consumer raise `error`; the consumer stops early with `close`, which makes `put` raise `_PipeClosed`.
    """

    limit: int = PIPE_BYTES
    _chunks: deque[bytes] = field(default_factory=deque)
    _waiting: int = 0
    _finished: bool = False
    _error: BaseException | None = None
    _closed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def put(self, chunk: bytes) -> None:
        with self._cond:
            while self._waiting >= self.limit and not self._closed:
                self._cond.wait()
            if self._closed:
                raise _PipeClosed("the reading side has stopped")
            self._chunks.append(chunk)
            self._waiting += len(chunk)
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def abandon(self, error: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._waiting = 0
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                while not self._chunks and not self._finished and self._error is None:
                    self._cond.wait()
                if self._error is not None:
                    raise self._error
                if not self._chunks:
                    return
                chunk = self._chunks.popleft()
                self._waiting -= len(chunk)
                self._cond.notify_all()
            yield chunk


class ArchiveWriter:
    """Write a tar archive encrypted to `recipients` to `out`, one file at a time.

    Use it as a context manager: leaving the block normally ends the archive (`close`), leaving it with an
    exception abandons it (`abort`; the output is then incomplete and must be discarded). Encryption runs in a
    worker thread reading from a bounded pipe (`pipe_bytes`); `out` must not be used by anyone else until the
    writer is closed. The writer itself is for one thread.
    """

    def __init__(self, out: Output, recipients: Sequence[str], *, mtime: int | None = None,
                 pipe_bytes: int = PIPE_BYTES) -> None:
        keys = _recipients(recipients)
        self._tar = _TarStream(mtime)
        self._pipe = _Pipe(limit=pipe_bytes)
        self._reader = _ChunkReader(iter(self._pipe))
        self._writer = _HashingWriter(out)
        self._gather = _Gatherer()
        self._failure: BaseException | None = None
        self._result: ArchiveResult | None = None
        self._thread = threading.Thread(target=self._run, args=(keys,), name="archive-encrypt", daemon=True)
        self._thread.start()

    def _run(self, recipients: list[x25519.Recipient]) -> None:
        try:
            _encrypt(self._reader, self._writer, recipients)
        except BaseException as exc:  # handed over to the producer's thread, which raises it
            self._failure = exc
        finally:
            self._pipe.close()

    @property
    def entries(self) -> list[FileEntry]:
        """The files written so far, in order."""
        return list(self._tar.entries)

    def _worker_failed(self) -> ArchiveError:
        self._thread.join()
        self._tar.ended = True
        if self._failure is None:
            return ArchiveError("writing the archive failed")
        error = ArchiveError(f"writing the archive failed: {self._failure}")
        error.__cause__ = self._failure
        return error

    def add_file(self, name: str, size: int, chunks: Iterable[Chunk], mtime: int | None = None) -> FileEntry:
        """Add a file of `size` bytes given as chunks.

        A bad name or size (`UnsafeName`, `SizeMismatch`) is refused before anything is written, and the archive
        can go on. Data that does not add up to `size`, or an exception from `chunks`, abandons the archive.
        """
        pieces = self._tar.member(name, size, chunks, mtime)
        try:
            for piece in pieces:
                for chunk in self._gather.add(piece):
                    self._pipe.put(chunk)
        except _PipeClosed:
            raise self._worker_failed()  # noqa: B904 - the worker's failure is the cause
        except BaseException:
            self.abort()
            raise
        return self._tar.entries[-1]

    def add_bytes(self, name: str, data: Chunk, mtime: int | None = None) -> FileEntry:
        """Add a file held in memory."""
        return self.add_file(name, memoryview(data).nbytes, (data,), mtime)

    def close(self) -> ArchiveResult:
        """End the archive and the age stream; returns what was written. Calling it again returns the same."""
        if self._result is not None:
            return self._result
        if self._tar.ended:
            raise ArchiveError("the archive was abandoned")
        try:
            for chunk in (*self._gather.add(self._tar.end()), *self._gather.flush()):
                self._pipe.put(chunk)
        except _PipeClosed:
            raise self._worker_failed()  # noqa: B904 - the worker's failure is the cause
        self._pipe.finish()
        self._thread.join()
        if self._failure is not None:
            raise self._worker_failed()
        self._result = ArchiveResult(entries=list(self._tar.entries), size=self._writer.size,
                                     sha256=self._writer.hexdigest())
        return self._result

    def abort(self) -> None:
        """Give up: the age stream is left unfinished (it will not decrypt) and the worker stops."""
        self._tar.ended = True
        self._pipe.abandon(ArchiveError("the archive was abandoned"))
        self._thread.join()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None:
            self.close()
        elif self._result is None:
            self.abort()


# ---------------------------------------------------------------------------------------------------------------
# Reading


class _MemberFile(io.BufferedIOBase):
    """A member's data as tarfile reads it, with tarfile's errors (a member cut short) turned into `ArchiveError`."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._inner.read(-1 if size is None else size)
        except tarfile.TarError:
            raise ArchiveError("the archive is damaged: a file in it is cut short") from None

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)


@dataclass(frozen=True)
class ArchiveMember:
    """A file read from an archive. `file` is readable only until the iteration moves on to the next member."""

    name: str
    size: int
    mtime: int
    file: io.BufferedIOBase

    def chunks(self, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        while chunk := self.file.read(chunk_size):
            yield chunk


class _PipeWriter(io.BufferedIOBase):
    """The writing end of a `_Pipe` for pyrage's decryption, gathering its small writes into larger chunks."""

    def __init__(self, pipe: _Pipe, gather: int = READ_CHUNK) -> None:
        super().__init__()
        self._pipe = pipe
        self._gather = gather
        self._pending = bytearray()
        self._closing = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._pending += data
        if len(self._pending) >= self._gather:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._pending and not self._closing:
            chunk = bytes(self._pending)
            self._pending.clear()
            self._pipe.put(chunk)

    def close(self) -> None:
        # Closing (also when garbage collected) does not push what is pending: `run` flushes on success only.
        self._closing = True
        super().close()


def _identities(identities: Sequence[str]) -> list[x25519.Identity]:
    if isinstance(identities, str):
        raise TypeError("identities is a list of strings")
    if not identities:
        raise InvalidIdentity("give at least one age identity")
    keys = []
    for identity in identities:
        try:
            keys.append(x25519.Identity.from_str(identity.strip()))
        except Exception:  # pyrage raises IdentityError or ValueError depending on what is wrong
            raise InvalidIdentity("not an age X25519 identity (AGE-SECRET-KEY-1...)") from None
    return keys


def iter_archive(encrypted: BinaryIO, identities: Sequence[str]) -> Generator[ArchiveMember, None, None]:
    """The files of an age-encrypted tar archive, in order, decrypted as they are read.

    `identities` are age X25519 secret keys (see `parse_identities`). Only regular files are yielded; directories
    are skipped; any other kind of member (links, devices), an unsafe or repeated name, data after the end of the
    archive, and a failure to decrypt raise `ArchiveError`, also from a member's `file` while it is read. Age
    authenticates the stream chunk by chunk, so what is yielded is genuine, but the archive is known to be whole
    only once the iteration ends without an error: consume it to the end before trusting that nothing is missing.
    Decryption runs in a worker thread, through a bounded pipe; nothing is written to disk.
    """
    keys = _identities(identities)
    pipe = _Pipe()

    def run() -> None:
        writer = _PipeWriter(pipe)
        try:
            # pyrage's stubs name BufferedIOBase; it only calls read() on its input.
            pyrage.decrypt_io(cast(io.BufferedIOBase, encrypted), writer, keys)
            writer.flush()
        except BaseException as exc:  # handed over to the reading thread, unless that one stopped first
            if not pipe.closed:
                pipe.abandon(ArchiveError("the archive could not be decrypted with the given identities, or it "
                                          f"is damaged ({exc})"))
        else:
            pipe.finish()

    thread = threading.Thread(target=run, name="archive-decrypt", daemon=True)
    thread.start()
    reader = _ChunkReader(iter(pipe))
    try:
        yield from _members(reader)
    finally:
        pipe.close()
        thread.join()


def _members(reader: _ChunkReader) -> Iterator[ArchiveMember]:
    try:
        tar = tarfile.open(fileobj=reader, mode="r|")
    except tarfile.TarError:
        raise ArchiveError("the decrypted data is not a tar archive") from None
    with tar:
        seen: set[str] = set()
        while True:
            try:
                info = tar.next()
            except tarfile.TarError:
                raise ArchiveError("the archive is damaged: a member header could not be read") from None
            if info is None:
                break
            # The stream is read once: forgetting the members passed keeps memory bounded.
            tar.members.clear()  # type: ignore[attr-defined]
            if info.isdir():
                continue
            if not info.isreg():
                raise ArchiveError("the archive holds a link or a special file: only regular files are accepted")
            name = info.name.removeprefix("./")
            try:
                safe_name(name)
            except UnsafeName as exc:
                raise ArchiveError(f"the archive holds an unsafe name: {exc}") from None
            if name.casefold() in seen:
                raise ArchiveError("the archive holds two files of the same name")
            seen.add(name.casefold())
            extracted = tar.extractfile(info)
            if extracted is None:  # only for links and special files, refused above
                raise ArchiveError("a member could not be read")
            yield ArchiveMember(name=name, size=info.size, mtime=int(info.mtime), file=_MemberFile(extracted))
        # Read to the end, so that age authenticates the whole stream, and accept only zero padding there.
        while rest := tar.fileobj.read(READ_CHUNK):
            if rest.count(0) != len(rest):
                raise ArchiveError("the archive has data after its end")
