"""The report API's running counts, for /metrics (dashboard/probes.py exports them).

Counted per process; under gunicorn prometheus_client keeps them in PROMETHEUS_MULTIPROC_DIR
(set by gunicorn.conf.py) and a scrape adds up every worker's.
"""

import logging

from prometheus_client import Counter, disable_created_metrics

# The *_created series double the output and say only when this process started.
disable_created_metrics()

logger = logging.getLogger("monitoring.reports")

REPORTS_INGESTED = Counter(
    "uploadops_reports_ingested", "Status reports accepted, by result (accepted, duplicate).", ["result"]
)
REPORTS_REFUSED = Counter("uploadops_reports_refused", "Status reports refused, by reason.", ["reason"])

# Why a report was refused: the label values of uploadops_reports_refused_total.
TOO_LARGE = "too_large"
WRONG_CONTENT_TYPE = "wrong_content_type"
UNAUTHENTICATED = "unauthenticated"
INVALID = "invalid"
WRONG_SERVER = "wrong_server"
DATABASE_UNAVAILABLE = "database_unavailable"
REFUSAL_REASONS = (TOO_LARGE, WRONG_CONTENT_TYPE, UNAUTHENTICATED, INVALID, WRONG_SERVER, DATABASE_UNAVAILABLE)
INGEST_RESULTS = ("accepted", "duplicate")
MAX_LOGGED_FIELDS = 20

# Every label value shows from the first scrape, at 0: a rate() over a series that appears
# only with its first refusal misses that refusal.
for _reason in REFUSAL_REASONS:
    REPORTS_REFUSED.labels(_reason)
for _result in INGEST_RESULTS:
    REPORTS_INGESTED.labels(_result)


def count_ingested(result: str) -> None:
    REPORTS_INGESTED.labels(result).inc()


def count_refused(reason: str, status: int, message: str, **details) -> None:
    """Count a refused report and log why (Django's own log line says only "Bad Request")."""
    REPORTS_REFUSED.labels(reason).inc()
    if "fields" in details:  # the names of the fields that are wrong; a report may list thousands
        details["fields"] = sorted(details["fields"])[:MAX_LOGGED_FIELDS]
    logger.warning("report refused: %s", message, extra={"reason": reason, "status_code": status, **details})
