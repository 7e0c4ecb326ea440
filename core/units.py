"""Byte sizes as people type and read them: "5 GB", "500 MiB", "1.5 TB", "2048".

Decimal units (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB)
powers of 1024, as on a disk label and in `ls -h`. Parsing is exact (Decimal), so what a
form shows parses back to the very same number of bytes: saving a form unchanged never
changes a limit.
"""

import re
from decimal import Decimal, InvalidOperation

UNIT_BYTES = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "PB": 1000**5,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
    "PIB": 1024**5,
}
_SIZE_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)\s*$", re.IGNORECASE)
_DECIMAL_UNITS = ["PB", "TB", "GB", "MB", "KB"]
_BINARY_UNITS = ["PiB", "TiB", "GiB", "MiB", "KiB"]


class ByteSizeError(ValueError):
    pass


def parse_bytes(text: str) -> int:
    """Parse "5 GB" to 5_000_000_000. Raises ByteSizeError with a message for people."""
    match = _SIZE_RE.match(text or "")
    if not match:
        raise ByteSizeError(f"Enter a size such as 500 MB, 5 GB or 2 GiB, not “{text}”.")
    unit = (match["unit"] or "B").upper()
    if unit not in UNIT_BYTES:
        raise ByteSizeError(f"Unknown unit “{match['unit']}”: use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB.")
    try:
        size = Decimal(match["number"]) * UNIT_BYTES[unit]
    except InvalidOperation as error:  # pragma: no cover - the regex admits only digits
        raise ByteSizeError(f"“{text}” is not a number.") from error
    if size != size.to_integral_value():
        raise ByteSizeError(f"“{text}” is not a whole number of bytes.")
    return int(size)


def format_bytes_exact(size_bytes: int | None) -> str:
    """The shortest exact spelling: 5_000_000_000 → "5 GB", 1_500_000_000 → "1.5 GB",
    5_368_709_120 → "5 GiB"; with no exact unit (up to three decimals), plain bytes."""
    if size_bytes is None:
        return ""
    spellings = [f"{size_bytes} B"]
    for unit in (*_DECIMAL_UNITS, *_BINARY_UNITS):
        factor = UNIT_BYTES[unit.upper()]
        if size_bytes >= factor and (size_bytes * 1000) % factor == 0:
            spellings.append(f"{(Decimal(size_bytes) / factor).normalize():f} {unit}")
    return min(spellings, key=len)


def format_bytes_short(size_bytes: int | None) -> str:
    """Rounded for tables: 1_234_567_891 → "1.23 GB"."""
    if size_bytes is None:
        return "—"
    for unit in _DECIMAL_UNITS:
        factor = UNIT_BYTES[unit]
        if size_bytes >= factor:
            return f"{size_bytes / factor:.3g} {unit}"
    return f"{size_bytes} B"
