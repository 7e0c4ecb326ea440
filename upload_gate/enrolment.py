"""A host enrols itself with the dashboard and deregisters at an orderly shutdown
(docs/status-report.md, "Enrolment"). Standard library only.

    from upload_gate.enrolment import enrol, deregister, enrol_once

    enrolled = enrol("https://ops.internal", secret, host_id="i-0abc")    # -> Enrolment
    enrolled.server_id, enrolled.token                                   # report as / with these
    deregister("https://ops.internal", enrolled.token)                   # True: gone now

The host id is the server's identity on the dashboard: one entry per host, however many
processes enrol and however often. Processes of one host share its token through a token
file: `enrol_once(url, secret, host_id, token_path)` returns the token kept there, or enrols
(under an exclusive lock on `<token_path>.lock`, so one process enrols while the others wait
and then read its token) and keeps the new one there (mode 0600).

StatusReporter (upload_gate.reporter) does all of this itself when given `enrolment_secret`
instead of a token; `upload-gate serve` passes it on.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import tempfile
import urllib.parse
from dataclasses import asdict, dataclass

ENROL_PATH = "/api/v1/enrol"
DEREGISTER_PATH = "/api/v1/deregister"
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx, and no answer at all


@dataclass(frozen=True)
class Enrolment:
    """What the dashboard answered: the name to report as, and this host's own token."""

    server_id: str
    token: str
    created: bool = False
    host_id: str = ""
    dashboard_url: str = ""


class EnrolmentError(Exception):
    """The dashboard did not enrol or deregister the host; `status` is None when it did not answer."""

    def __init__(self, message: str, status: int | None = None, retry_after_seconds: float | None = None):
        self.status = status
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """True when trying again later may work (the dashboard was down, busy or throttling);
        False for a wrong secret (401), a revoked server (403), a name taken (409), bad input."""
        return self.status is None or self.status >= 500 or self.status in RETRY_STATUSES


def enrol(
    dashboard_url: str,
    secret: str,
    host_id: str,
    *,
    name: str | None = None,
    instance_id: str = "",
    scaling_group: str = "",
    timeout_seconds: float = 5.0,
) -> Enrolment:
    """Enrol this host with the fleet enrolment secret; its server entry and a new token.

    Enrolling again (same host id) replaces the token of the host's one entry: any token kept
    from before stops working. Raises EnrolmentError.
    """
    body = {"host_id": host_id}
    body.update({key: value for key, value in (("name", name), ("instance_id", instance_id)) if value})
    if scaling_group:
        body["scaling_group"] = scaling_group
    status, answer, retry_after = _post(dashboard_url, ENROL_PATH, secret, body, timeout_seconds)
    if status not in (200, 201):
        raise _error("enrolment refused", status, answer, retry_after)
    try:
        return Enrolment(
            server_id=str(answer["server_id"]),
            token=str(answer["token"]),
            created=bool(answer.get("created")),
            host_id=host_id,
            dashboard_url=dashboard_url,
        )
    except (KeyError, TypeError) as error:
        raise EnrolmentError(f"the dashboard's enrolment answer lacks {error}", status) from error


def deregister(dashboard_url: str, token: str, *, reason: str = "", timeout_seconds: float = 3.0) -> bool:
    """Tell the dashboard this host is shutting down in order: its server is gone at once
    (no "server silent" alert). True when deregistered now; False when the token no longer
    counted (deregistered, revoked or replaced already). Raises EnrolmentError otherwise."""
    status, answer, retry_after = _post(
        dashboard_url, DEREGISTER_PATH, token, {"reason": reason} if reason else {}, timeout_seconds
    )
    if status == 200:
        return True
    if status == 401:
        return False
    raise _error("deregistration refused", status, answer, retry_after)


# ---- one token per host, kept in a file ------------------------------------------------------


class TokenFile:
    """The host's enrolment, kept as JSON in a file only its owner can read."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)

    def load(self) -> Enrolment | None:
        try:
            with open(self.path, encoding="utf-8") as kept:
                data = json.load(kept)
            return Enrolment(**{key: data[key] for key in ("server_id", "token")}) if data.get("token") else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: enrol again

    def save(self, enrolment: Enrolment) -> None:
        """Write atomically (a reader never sees half a file), readable by the owner only."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".token-", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(asdict(enrolment), out)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def forget(self, token: str) -> None:
        """Remove the file if it still holds this token (not one another process got since)."""
        with self.locked():
            kept = self.load()
            if kept is not None and kept.token == token:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)

    @contextlib.contextmanager
    def locked(self):
        """An exclusive lock shared by every process of the host (released if one dies)."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def enrol_once(
    dashboard_url: str,
    secret: str,
    host_id: str,
    token_path: str | os.PathLike,
    *,
    stale_token: str | None = None,
    **enrol_options,
) -> Enrolment:
    """The host's token from `token_path`, enrolling (once for all its processes) when there is none.

    `stale_token`: the dashboard refused this token (401): enrol again, unless another process
    of the host has already done so and kept a newer token in the file.
    """
    tokens = TokenFile(token_path)
    with tokens.locked():
        kept = tokens.load()
        if kept is not None and kept.token != stale_token:
            return kept
        enrolled = enrol(dashboard_url, secret, host_id, **enrol_options)
        tokens.save(enrolled)
        return enrolled


# ---- HTTP ------------------------------------------------------------------------------------


def _post(dashboard_url: str, path: str, bearer: str, body: dict, timeout_seconds: float):
    url = urllib.parse.urlsplit(dashboard_url.rstrip("/") + path)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"dashboard_url must be http(s)://host[:port][/prefix], not {dashboard_url!r}")
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(url.hostname, url.port, timeout=timeout_seconds)
    payload = json.dumps(body).encode()
    headers = {
        "Authorization": f"Bearer {bearer}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Connection": "close",
    }
    try:
        connection.request("POST", url.path, body=payload, headers=headers)
        response = connection.getresponse()
        status, raw = response.status, response.read(64 * 1024)
        retry_after = _seconds(response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as error:
        raise EnrolmentError(f"dashboard unreachable: {type(error).__name__}: {error}") from error
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {"error": raw[:300].decode("utf-8", "replace")}
    return status, answer if isinstance(answer, dict) else {"error": str(answer)[:300]}, retry_after


def _error(what: str, status: int, answer: dict, retry_after: float | None) -> EnrolmentError:
    detail = answer.get("error", "")
    if answer.get("fields"):
        detail += f" {answer['fields']}"
    return EnrolmentError(f"{what}: HTTP {status}: {detail}".rstrip(": "), status, retry_after)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
