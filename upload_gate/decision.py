"""What `gate.admit()` returns: cheap to build, headers only on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .headers import build_headers

if TYPE_CHECKING:
    from .limits import Limits
    from .state import Lease

# (limits, gcra gap us, uploads in flight, bytes in flight, day bytes, wall us or None):
# the numbers the headers need, captured at decision time so lazy headers stay exact.
HeaderView = tuple["Limits", int, int, int, int, "int | None"]


class Decision:
    """admitted, status (200 / 429 / 503), reason, retry_after_seconds, limit, lease."""

    __slots__ = (
        "admitted",
        "status",
        "reason",
        "retry_after_seconds",
        "limit",
        "lease",
        "_view",
        "_headers",
        "shadow_lease",
        "problem",
    )

    def __init__(
        self,
        admitted: bool,
        status: int,
        reason: str,
        retry_after_seconds: int | None,
        limit: str | None,
        lease: Lease | None,
        view: HeaderView | None,
        problem: dict | None = None,
    ) -> None:
        self.problem = problem
        self.admitted = admitted
        self.status = status
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds
        self.limit = limit
        self.lease = lease
        self._view = view
        self._headers: dict[str, str] | None = None
        # Set when only the shadow limits admitted the upload (see upload_gate/shadow.py).
        self.shadow_lease: Lease | None = None

    def headers(self) -> dict[str, str]:
        """RateLimit-Policy, RateLimit and (when rejected) Retry-After, built once."""
        headers = self._headers
        if headers is None:  # not built yet (a test, not an exception: this is the hot path)
            headers = self._headers = build_headers(self)
        return headers

    def as_dict(self) -> dict:
        """A JSON body for the response; an RFC 9457 problem (type, title, ...) when one applies."""
        body = {
            "admitted": self.admitted,
            "status": self.status,
            "reason": self.reason,
            "retry_after_seconds": self.retry_after_seconds,
            "limit": self.limit,
        }
        if self.problem:
            body.update(self.problem)
        return body

    def __bool__(self) -> bool:
        return self.admitted

    def __repr__(self) -> str:
        return (
            f"<Decision {self.status} admitted={self.admitted} limit={self.limit!r} "
            f"retry_after={self.retry_after_seconds} reason={self.reason!r}>"
        )


class Admitted(Decision):
    """An admitted decision. The constant fields live on the class, so the hot path sets
    only two slots (building a full Decision costs about twice as much)."""

    __slots__ = ()
    admitted = True  # type: ignore[assignment]
    status = 200  # type: ignore[assignment]
    reason = ""  # type: ignore[assignment]
    retry_after_seconds = None  # type: ignore[assignment]
    limit = None  # type: ignore[assignment]
    shadow_lease = None  # type: ignore[assignment]
    problem = None  # type: ignore[assignment]

    def __init__(self, lease: Lease, view: HeaderView) -> None:  # noqa: D107
        self.lease = lease
        self._view = view
        self._headers = None
