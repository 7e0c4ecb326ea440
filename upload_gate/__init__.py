"""The upload gate: the admission-control library upload servers run (no Django).

    from upload_gate import UploadGate
    gate = UploadGate("postgresql://reader@db/app")        # or "sqlite:////path/db.sqlite3"
    decision = gate.admit(client_id, size_bytes)
    ...
    gate.release(decision.lease, "completed")

See docs/upload-gate.md. The redis package is imported only in Redis mode, psycopg only
for PostgreSQL.
"""

from .clock import ManualClock, SystemClock
from .decision import Decision
from .gate import STATUS_ADMITTED, UploadGate
from .limits import (
    LIMIT_ALL_PARTNERS_PAUSED,
    LIMIT_BYTES_IN_FLIGHT,
    LIMIT_CONCURRENCY,
    LIMIT_DAILY_BYTES,
    LIMIT_PAUSED,
    LIMIT_RATE,
    Limits,
    share,
)
from .rejections import STATUS_PAUSED, STATUS_THROTTLED
from .sources import PostgresSource, SourceUnavailable, SqliteSource, StaticSource, source_from_url
from .state import COMPLETED, FAILED, OUTCOMES, TIMED_OUT, Lease, ShadowLease
from .table import COLUMNS, LimitRow, TableSnapshot

__all__ = [
    "COLUMNS",
    "COMPLETED",
    "FAILED",
    "LIMIT_ALL_PARTNERS_PAUSED",
    "LIMIT_BYTES_IN_FLIGHT",
    "LIMIT_CONCURRENCY",
    "LIMIT_DAILY_BYTES",
    "LIMIT_PAUSED",
    "LIMIT_RATE",
    "OUTCOMES",
    "STATUS_ADMITTED",
    "STATUS_PAUSED",
    "STATUS_THROTTLED",
    "TIMED_OUT",
    "Decision",
    "Lease",
    "ShadowLease",
    "LimitRow",
    "Limits",
    "ManualClock",
    "PostgresSource",
    "SourceUnavailable",
    "SqliteSource",
    "StaticSource",
    "SystemClock",
    "TableSnapshot",
    "UploadGate",
    "share",
    "source_from_url",
]
