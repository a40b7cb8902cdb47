"""Opening export files: byte order marks, declared encodings and precise decode errors."""

from __future__ import annotations

import codecs
import io
from typing import TYPE_CHECKING, BinaryIO

from staffsync.sources.base import SourceError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "count_line_breaks",
    "describe_decode_error",
    "is_utf8",
    "open_binary",
    "open_text",
]

_CHUNK_SIZE = 1 << 20

# Tried in this order when a file does not decode; latin-1 decodes any byte, so it comes last.
_SUGGESTED_ENCODINGS = ("utf-8", "cp1252", "latin-1")

# UTF-32 first: the UTF-32-LE mark starts with the UTF-16-LE one.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def codec_name(encoding: str) -> str:
    """Return Python's canonical name for ``encoding`` (``UTF8`` -> ``utf-8``)."""
    return codecs.lookup(encoding).name


def is_utf8(encoding: str) -> bool:
    """Tell whether ``encoding`` is UTF-8, with or without the ``-sig`` variant."""
    return codec_name(encoding) in ("utf-8", "utf-8-sig")


def _is_wide(encoding: str) -> bool:
    return codec_name(encoding).startswith(("utf-16", "utf-32"))


def open_binary(path: Path, encoding: str) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading and position it after a UTF-8 byte order mark.

    Returns the file and the number of bytes skipped (0 or 3). A UTF-8 mark is skipped
    whatever ``encoding`` declares, because Excel writes one in front of files that are
    otherwise plain. UTF-16 and UTF-32 marks are left to their codecs.

    Raises:
        SourceError: the file cannot be opened, or it starts with a UTF-16/32 byte order
            mark while ``encoding`` is a narrow encoding.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        msg = "the file does not exist; check [source] path"
        raise SourceError(msg, location=str(path)) from None
    except OSError as exc:
        msg = f"the file cannot be opened: {exc.strerror}; check [source] path and permissions"
        raise SourceError(msg, location=str(path)) from None

    start = handle.read(4)
    wide = _is_wide(encoding)
    for bom, family in _WIDE_BOMS:
        if start.startswith(bom) and not wide:
            handle.close()
            msg = (
                f"the file starts with a {family.upper()} byte order mark but [source]"
                f' encoding is {encoding!r}; set encoding = "{family}"'
            )
            raise SourceError(msg, location=str(path))

    skipped = 3 if start.startswith(codecs.BOM_UTF8) and not wide else 0
    handle.seek(skipped)
    return handle, skipped


def open_text(path: Path, encoding: str) -> tuple[io.TextIOWrapper, int]:
    """Open ``path`` as text in ``encoding`` with line endings left as they are.

    Returns the text stream and the number of bytes skipped by :func:`open_binary`. A
    U+FEFF that the codec leaves at the start (``utf-16-le`` declared on a file with a
    mark) is the caller's to drop, because text streams cannot be peeked.
    """
    handle, skipped = open_binary(path, encoding)
    # newline="" keeps "\r\n" and "\r" inside quoted values, as the csv module requires.
    return io.TextIOWrapper(handle, encoding=encoding, errors="strict", newline=""), skipped


def count_line_breaks(text: str) -> int:
    """Count line breaks in ``text``, where ``\\r\\n``, ``\\r`` and ``\\n`` each count once."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def describe_decode_error(path: Path, encoding: str) -> SourceError:
    """Build the error for a file that does not decode in ``encoding``.

    Reads the file again from the start, so the line and byte are exact even though the
    failing read decoded a whole chunk at once. The message names the physical line, the
    offending byte and, where one decodes the whole file, an encoding to declare.
    """
    handle, skipped = open_binary(path, encoding)
    with handle:
        failure = _find_decode_failure(handle, encoding, skipped)

    if failure is None:
        # The first read failed but this one did not: the file changed while being read.
        msg = f"the file stopped decoding as {encoding} while being read; was it being rewritten?"
        return SourceError(msg, location=str(path))

    line, offset, byte = failure
    msg = (
        f"line {line} is not valid {encoding}: byte 0x{byte:02X} at byte offset {offset}"
        f" cannot be decoded; {_suggest_encoding(path, encoding)}"
    )
    return SourceError(msg, location=str(path))


def _find_decode_failure(
    handle: BinaryIO, encoding: str, skipped: int
) -> tuple[int, int, int] | None:
    """Return the (line, byte offset, byte value) of the first undecodable byte, or None."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    line = 1
    consumed = skipped
    last_char = ""

    while True:
        chunk = handle.read(_CHUNK_SIZE)
        state = decoder.getstate()
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            # exc.object is the decoder's pending bytes followed by this chunk.
            pending = len(state[0]) if isinstance(state[0], bytes) else 0
            replay = codecs.getincrementaldecoder(encoding)("strict")
            replay.setstate(state)
            prefix = replay.decode(chunk[: max(exc.start - pending, 0)])
            line += _breaks_after(last_char, prefix)
            return line, consumed - pending + exc.start, exc.object[exc.start]

        line += _breaks_after(last_char, text)
        last_char = text[-1:] or last_char
        consumed += len(chunk)
        if not chunk:
            return None


def _breaks_after(last_char: str, text: str) -> int:
    # A "\r\n" split across two chunks is one line break, counted with the "\r".
    return count_line_breaks(text) - (last_char == "\r" and text.startswith("\n"))


def _suggest_encoding(path: Path, declared: str) -> str:
    declared_name = codec_name(declared)
    for candidate in _SUGGESTED_ENCODINGS:
        if codec_name(candidate) == declared_name:
            continue
        if _decodes_as(path, candidate):
            return f'the file decodes as {candidate}: set [source] encoding = "{candidate}"'
    return "re-export the file as UTF-8 or set [source] encoding to the encoding it was saved in"


def _decodes_as(path: Path, encoding: str) -> bool:
    handle, _ = open_binary(path, encoding)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    with handle:
        try:
            while chunk := handle.read(_CHUNK_SIZE):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True
