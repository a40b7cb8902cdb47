"""Write the HR test files whose bytes matter: encodings, byte order marks, line endings.

Their content is spelled out here with escapes, because an editor or a diff would hide
what makes them special. The committed files must equal what this script writes (a test
checks it); run ``python tests/data/hr/make_binary_files.py`` after changing a case.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

BINARY_FILES: dict[str, bytes] = {
    # Excel's "CSV UTF-8": a byte order mark in front of the header.
    "bom_utf8.csv": (
        b"\xef\xbb\xbfemployee_id,first_name,work_email\nE1,Ren\xc3\xa9e,renee@example.com\n"
    ),
    # Windows-1252: 0xE9 is "e" with an acute accent, 0x80 the euro sign.
    "cp1252.csv": (
        b"employee_id,first_name,department\nE1,Ren\xe9e,Fran\xe7ais\nE2,Zo\xeb,\x80 Finance\n"
    ),
    # A Windows-1252 file that a tool prefixed with a UTF-8 byte order mark.
    "cp1252_bom.csv": b"\xef\xbb\xbfemployee_id,first_name\nE1,Ren\xe9e\n",
    # UTF-16 little-endian with its byte order mark, as Excel's "Unicode text" writes.
    "utf16.csv": "\ufeffemployee_id\tfirst_name\r\nE1\tRenée\r\nE2\tZoë\r\n".encode("utf-16-le"),
    # Windows line endings, with a blank line and a quoted value holding CRLF.
    "crlf.csv": (
        b"employee_id,first_name,note\r\n"
        b"E1,Ann,one\r\n"
        b"\r\n"
        b'E2,Bob,"two\r\nlines"\r\n'
        b"E3,Cem,three\r\n"
    ),
    # Old Mac line endings: carriage returns only.
    "cr_only.csv": b"employee_id,first_name\rE1,Ann\rE2,Bob\r",
    # Decomposed accents (NFD), no-break spaces, a zero-width space and a stray BOM.
    "unicode_whitespace.csv": (
        "employee_id,first_name,last_name,work_email,status\n"
        "\u00a0E1\u00a0,Rene\u0301e,\u200bMu\u0308ller\ufeff,renee@example.com\u2003,active\n"
    ).encode("utf-8"),
}


def main() -> None:
    for name, content in BINARY_FILES.items():
        (HERE / name).write_bytes(content)


if __name__ == "__main__":
    main()
