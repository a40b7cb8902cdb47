"""Write the input files whose bytes matter: encodings, byte order marks, line endings.

Their content is spelled out here with escapes, because an editor or a diff would hide
what makes them special. The committed files must equal what this script writes (a test
checks it); run ``python tests/data/input/make_files.py`` after changing a case.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

HEADER = "employee_id,first_name,last_name,work_email,title,department,location,manager_id,status"

BINARY_FILES: dict[str, bytes] = {
    # Excel's "CSV UTF-8": a byte order mark in front of the header, CRLF line endings.
    "bom.csv": (
        f"\ufeff{HEADER}\r\nE1,Ren\u00e9e,Roux,renee@example.com,Chef,Kitchen,Lyon,,active\r\n"
    ).encode(),
    # Windows-1252, as Excel saves "CSV" on a Western European Windows.
    "cp1252.csv": (
        f"{HEADER}\r\n"
        "E1,Ren\u00e9e,Roux,renee@example.com,Chef,Cuisine fran\u00e7aise,Lyon,,active\r\n"
        "E2,Zo\u00eb,Brandt,zoe@example.com,Analyst,\u20ac Finance,K\u00f6ln,E1,active\r\n"
    ).encode("cp1252"),
    # Quoted values holding the delimiter, doubled quotes and CRLF line breaks; the row
    # after the two-line value starts on line 4.
    "quoted.csv": (
        f"{HEADER}\r\n"
        'E1,Ann,Ng,ann@example.com,"Head of Sales, EMEA",Sales,"Building 1\r\nFloor 2,'
        ' ""East""",,active\r\n'
        'E2,Bob,Ortiz,bob@example.com,"The ""Fixer""",R&D,Hamburg,E1,Retired\r\n'
        'E3,Cem,Kaya,cem@example.com,Designer,"R&D, UX",Berlin,E1,active\r\n'
    ).encode(),
    # Decomposed accents (NFD), no-break and narrow no-break spaces, a zero-width space,
    # a stray byte order mark and an em space around the values.
    "unicode.csv": (
        f"{HEADER}\n"
        "\u00a0E1\u00a0,Rene\u0301e,\u200bMu\u0308ller\ufeff,renee@example.com\u2003,"
        "\u202fChef\u202f,\u00a0Cuisine,Lyon,,active\n"
    ).encode(),
}


def main() -> None:
    for name, content in BINARY_FILES.items():
        (HERE / name).write_bytes(content)


if __name__ == "__main__":
    main()
