"""Pairs files on disk: the path, the format, the compression and the text encoding.

A pairs file is CSV, Parquet or JSON Lines (format from the suffix, or given), optionally
compressed as ``.zip`` (one data file inside) or ``.gz``. Every problem raises
:class:`~graphrel.errors.GraphrelInputError` naming the file and the fix; a byte that is not
valid in the text encoding is named with its line and 1-based data row.

:class:`TextFile` opens a CSV or JSON Lines file as text, either decoding it as it is read
(chunked reading: memory stays flat) or decoding the whole file at once (a whole-file load:
a bad byte anywhere is then the first error, before any row is parsed).
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, TextIO

from graphrel.errors import GraphrelInputError

__all__ = ["PathLike", "FORMATS", "check_path", "resolve_format", "read_whole", "open_binary", "reading", "TextFile",
           "checked_codec", "file_is_empty"]

PathLike = str | os.PathLike

FORMATS = ("csv", "parquet", "jsonl")
SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                  ".jsonl": "jsonl", ".ndjson": "jsonl"}
COMPRESSIONS = (".zip", ".gz")


def file_is_empty(p: Path) -> GraphrelInputError:
    return GraphrelInputError("file is empty", path=p,
                              fix="pass a file with a header line and at least one data row")


def check_path(path: PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path`, checked: it exists, is a regular file (not ``-``,
    a named pipe, a socket or a device, which cannot be read twice) and is not empty."""
    p = Path(path)
    if str(path) == "-":
        raise GraphrelInputError("standard input ('-') is not read: the input is read more than once "
                                 "(its header and format first, then its rows)", path=p,
                                 fix="save the data to a file and pass its path")
    if not p.exists():
        raise GraphrelInputError("file not found", path=p,
                                 fix="check the path (relative paths start at the working directory)")
    if p.is_dir():
        raise GraphrelInputError("is a directory, not a file", path=p,
                                 fix="pass the path of the data file inside it")
    if not p.is_file():
        import stat

        mode = p.stat().st_mode
        what = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise GraphrelInputError(f"is {what}, not a regular file: the input is read more than once "
                                 "(its header and format first, then its rows)", path=p,
                                 fix="save the data to a file and pass its path")
    if p.stat().st_size == 0:
        raise file_is_empty(p)
    return p


def _split_suffix(p: Path) -> tuple[str | None, str | None]:
    """(format from the suffix or None, compression '.zip'/'.gz' or None)."""
    suffixes = [s.lower() for s in p.suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS:
        compression = suffixes.pop()
    fmt = SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def resolve_format(p: Path, file_format: str | None) -> tuple[str, str | None]:
    """(format, one of :data:`FORMATS`; compression ``".zip"``, ``".gz"`` or None) of a file.

    ``file_format`` (``csv``, ``parquet``, ``jsonl``; also ``pq``, ``json``, ``ndjson``)
    overrides the suffix; a compressed file without a format suffix is CSV.
    """
    fmt, compression = _split_suffix(p)
    if file_format is not None:
        fmt = str(file_format).lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise GraphrelInputError(
                f"unknown file format {file_format!r}", path=p,
                fix=f"pass file_format (--file-format) as one of {', '.join(FORMATS)}")
    elif fmt is None:
        if compression is not None:
            fmt = "csv"  # e.g. Kaggle's train.zip
        else:
            raise GraphrelInputError(
                f"cannot tell the file format from the name {p.name!r}", path=p,
                fix="use a .csv, .csv.zip, .csv.gz, .parquet, .jsonl or .ndjson name, "
                    "or pass file_format (--file-format) csv/parquet/jsonl")
    return fmt, compression


# --------------------------------------------------------------------------- compression


def _zip_member(zf: zipfile.ZipFile, p: Path) -> zipfile.ZipInfo:
    """The one data file of a zip archive."""
    members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(members) > 1:
        data_like = [m for m in members if Path(m.filename).suffix.lower() in SUFFIX_FORMATS]
        members = data_like if len(data_like) == 1 else members
    if len(members) != 1:
        names = ", ".join(m.filename for m in members) or "none"
        raise GraphrelInputError(f"zip archive must hold exactly one data file, found: {names}", path=p,
                                 fix="unzip it and pass the data file itself")
    return members[0]


def _bad_archive(p: Path, compression: str, err: Exception) -> GraphrelInputError:
    what = "zip archive" if compression == ".zip" else "gzip file"
    return GraphrelInputError(f"not a valid {what} ({err})", path=p,
                              fix="re-download the file or pass the uncompressed file")


_ARCHIVE_ERRORS = {".zip": (zipfile.BadZipFile, EOFError, zlib.error), ".gz": (OSError, EOFError, zlib.error)}


@contextmanager
def reading(p: Path, compression: str | None) -> Iterator[None]:
    """Within the block, a compressed file that cannot be decompressed (bad archive, bad
    checksum, cut short) raises the one-line error naming zip or gzip."""
    try:
        yield
    except _ARCHIVE_ERRORS.get(compression or "", ()) as err:
        raise _bad_archive(p, str(compression), err) from None


def read_whole(p: Path, compression: str | None) -> bytes:
    """The whole file's bytes, decompressed for .zip (one data member) and .gz (a whole-file
    load holds them in memory); a broken archive raises the one-line error."""
    with reading(p, compression):
        if compression == ".zip":
            with zipfile.ZipFile(p) as zf:
                return zf.read(_zip_member(zf, p))
        if compression == ".gz":
            return gzip.decompress(p.read_bytes())
        return p.read_bytes()


@contextmanager
def open_binary(p: Path, compression: str | None) -> Iterator[BinaryIO]:
    """The file as a binary stream, decompressed on the fly for .zip (one data member) and .gz."""
    if compression == ".zip":
        with reading(p, compression):
            zf = zipfile.ZipFile(p)
        with zf, zf.open(_zip_member(zf, p)) as stream:
            yield stream
    elif compression == ".gz":
        with gzip.open(p, "rb") as stream:
            yield stream
    else:
        with open(p, "rb") as stream:
            yield stream


# --------------------------------------------------------------------------- text encoding


def _python_encoding(encoding: str) -> tuple[str, bool]:
    """(codec to decode with, whether the encoding is UTF-8); UTF-8 accepts a byte-order mark."""
    is_utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    return ("utf-8-sig" if is_utf8 else encoding), is_utf8


def _unknown_encoding(p: Path, encoding: str) -> GraphrelInputError:
    return GraphrelInputError(f"unknown text encoding {encoding!r}", path=p,
                              fix="pass encoding (--encoding) as e.g. utf-8 or latin-1")


def checked_codec(p: Path, encoding: str) -> str:
    """Python codec name of ``encoding``; GraphrelInputError naming the file if unknown."""
    codec, _ = _python_encoding(encoding)
    try:
        codecs.lookup(codec)
    except LookupError:
        raise _unknown_encoding(p, encoding) from None
    return codec


def _encoding_error(p: Path, encoding: str, line: int, bad: bytes, *, header: bool) -> GraphrelInputError:
    """The one-line error for byte ``bad`` at 1-based ``line`` not being valid ``encoding``."""
    _, is_utf8 = _python_encoding(encoding)
    row = line - 1 if header else line
    where = f"line {line}" + (" (the header)" if row < 1 else "")
    fix = ("re-encode the file as UTF-8 or pass --encoding latin-1 (config key encoding)"
           if is_utf8 else
           f"re-encode the file as {encoding} or pass the file's real encoding (--encoding)")
    return GraphrelInputError(f"byte 0x{bad.hex().upper()} at {where} is not valid {encoding}", path=p,
                              row=row if row >= 1 else None, fix=fix)


def _decode(raw: bytes, p: Path, encoding: str, *, header: bool) -> str:
    """Decode ``raw`` (a whole file); on a bad byte name its 1-based line and data row."""
    codec, _ = _python_encoding(encoding)
    try:
        return raw.decode(codec)
    except LookupError:
        raise _unknown_encoding(p, encoding) from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise _encoding_error(p, encoding, line, raw[err.start:err.start + 1], header=header) from None


def _locate_decode_error(p: Path, compression: str | None, encoding: str, *,
                         header: bool) -> GraphrelInputError:
    """Find the first byte of the file that is not valid ``encoding`` (reading it in 1 MiB
    blocks with an incremental decoder) and return the error naming its line and row."""
    codec, _ = _python_encoding(encoding)
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    newlines = 0  # in the blocks decoded so far (pending partial characters hold no newline)
    with open_binary(p, compression) as stream:
        while True:
            block = stream.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                data = err.object  # what the codec was given: pending bytes + this block
                line = newlines + data.count(b"\n", 0, err.start) + 1
                return _encoding_error(p, encoding, line, data[err.start:err.start + 1], header=header)
            newlines += block.count(b"\n")
            if not block:
                break
    return GraphrelInputError(f"text is not valid {encoding}", path=p,
                              fix="re-encode the file or pass its real encoding (--encoding)")


class TextFile:
    """A CSV or JSON Lines file opened as text, as often as a reader needs (header, then rows).

    Args:
        p, compression, encoding: the file (:func:`resolve_format`) and its text encoding.
        header: line 1 is a header (CSV), so data row = line - 1 in encoding errors.
        whole: decode the whole file at once, when first opened, and keep the text: a bad
            byte anywhere, and a file of white space only, are the first errors. Otherwise
            the file is decoded as it is read and a bad byte is an error when it is reached.
    """

    def __init__(self, p: Path, compression: str | None, encoding: str, *, header: bool, whole: bool) -> None:
        self.p, self.compression, self.encoding = p, compression, encoding
        self.header, self.whole = header, whole
        self._text: str | None = None

    def _whole_text(self) -> str:
        if self._text is None:
            raw = read_whole(self.p, self.compression)
            self._text = _decode(raw, self.p, self.encoding, header=self.header)
            if not self._text.strip():
                raise file_is_empty(self.p)
        return self._text

    @contextmanager
    def open(self, newline: str | None) -> Iterator[TextIO]:
        """The text (``newline`` as for :func:`open`); within the block, a byte that is not
        valid in the encoding and a broken archive raise their one-line errors."""
        if self.whole:
            yield io.StringIO(self._whole_text(), newline=newline)
            return
        codec = checked_codec(self.p, self.encoding)
        try:
            with (reading(self.p, self.compression), open_binary(self.p, self.compression) as stream,
                  io.TextIOWrapper(stream, encoding=codec, errors="strict", newline=newline) as text):
                yield text
        except UnicodeDecodeError:
            raise _locate_decode_error(self.p, self.compression, self.encoding, header=self.header) from None
