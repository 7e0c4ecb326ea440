"""The status reporter's enrolment, a mixin of StatusReporter (it shares the reporter's lock,
backoff and queue).

A host can enrol itself instead of being given a token (docs/status-report.md, "Enrolment"):

    reporter = StatusReporter(gate, "https://ops.internal", None, None,
                              enrolment_secret=secret, token_file="/var/lib/upload-gate/token.json")
    ...
    reporter.stop(deregister=True)        # an orderly shutdown: the server is gone, not silent

It enrols (upload_gate.enrolment.enrol_once: once per host, the token kept in the file) before
its first report, retries with the backoff while the dashboard is unreachable, and enrols again
when the dashboard refuses its token (401: rotated, or the server was marked gone). Deregister
only from the process that speaks for the host (the sidecar), not from one worker among many.
"""

from __future__ import annotations

import collections
import json
import logging
import re

from . import enrolment
from .enrolment import Enrolment, EnrolmentError
from .host import host_id, instance_id

log = logging.getLogger("upload_gate.reporter")


class HostEnrolment:
    def _enrol(self) -> bool:
        """Get this host's token from the dashboard (or the token file); False after a failure,
        with the backoff set (a refusal such as a wrong secret waits the longest backoff)."""
        try:
            host = self._host_id or host_id()
        except ValueError as error:  # a host name that is no valid host id: say how to set one
            self.last_error = str(error)
            log.error("cannot enrol: %s", error)
            with self._lock:
                self._back_off(self.max_backoff_seconds)
            return False
        options = {
            "name": self.server_id or _server_name_for(host),
            "instance_id": instance_id() if self._instance_id is None else self._instance_id,
            "scaling_group": self._scaling_group,
            "timeout_seconds": self.timeout_seconds,
        }
        try:
            if self._token_file:
                enrolled = enrolment.enrol_once(
                    self.dashboard_url,
                    self._enrolment_secret,
                    host,
                    self._token_file,
                    stale_token=self._stale_token,
                    **options,
                )
            else:
                enrolled = enrolment.enrol(self.dashboard_url, self._enrolment_secret, host, **options)
        except (EnrolmentError, OSError) as error:
            status = getattr(error, "status", None)
            retryable = getattr(error, "retryable", True)
            self.last_status, self.last_error = status, str(error)
            log.log(logging.WARNING if retryable else logging.ERROR, "could not enrol host %s: %s", host, error)
            with self._lock:
                self._back_off(None if retryable else self.max_backoff_seconds)
            return False
        self._adopt(enrolled)
        log.info("enrolled host %s as server %s", host, enrolled.server_id)
        return True

    def _adopt(self, enrolled: Enrolment) -> None:
        """Report with the enrolment's token and name from now on (queued reports too)."""
        with self._lock:
            self._token, self._stale_token = enrolled.token, None
            if enrolled.server_id != self.server_id:
                self.server_id = enrolled.server_id
                self._queue = collections.deque(
                    (sequence, _renamed(body, enrolled.server_id)) for sequence, body in self._queue
                )

    @property
    def enrolled(self) -> bool:
        return self._token is not None

    def deregister(self, reason: str = "") -> bool:
        """Tell the dashboard this host shuts down in order (its server is gone, not silent) and
        forget the token; True when the dashboard deregistered it now."""
        token = self._token
        if token is None:
            return False
        try:
            done = enrolment.deregister(self.dashboard_url, token, reason=reason, timeout_seconds=self.timeout_seconds)
        except EnrolmentError as error:
            log.warning("could not deregister server %s: %s", self.server_id, error)
            return False
        self._token = None
        if self._token_file:
            enrolment.TokenFile(self._token_file).forget(token)
        return done


def _server_name_for(host: str) -> str:
    """A host id as a server name (which allows no ':'), e.g. for the dashboard's default."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", host)[:100]


def _renamed(body: bytes, server_id: str) -> bytes:
    report = json.loads(body)
    report["server_id"] = server_id
    return json.dumps(report, separators=(",", ":")).encode()
