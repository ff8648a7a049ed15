"""A loopback HTTP proxy in front of moto_server that counts EC2 calls and can throttle them.

Each EC2 request (the service is read from the SigV4 ``Authorization`` header, the action
from the form-encoded body's ``Action=``) takes a token from its API class's bucket, as AWS
documents EC2 request throttling; without a token it is answered like AWS does: HTTP 503
with the EC2 XML error ``RequestLimitExceeded``. Without buckets it only counts.
"""

from __future__ import annotations

__all__ = ["AWS_BUCKETS", "Bucket", "EC2Proxy", "bucket_of"]

import http.client
import re
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from benchmarks.servers import LOOPBACK, require_loopback

_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)
_MAX_BODY = 64 * 1024 * 1024


@dataclass
class Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    burst: float
    rate: float
    tokens: float = -1.0
    stamp: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> bool:
        """Take one token if there is one."""
        with self.lock:
            now = time.monotonic()
            if self.tokens < 0:
                self.tokens, self.stamp = self.burst, now
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


# AWS EC2 request throttling (burst, refill per second) per API class.
AWS_BUCKETS: dict[str, tuple[float, float]] = {
    "non-mutating": (100, 20),  # Describe*
    "sg-ingress": (50, 5),  # AuthorizeSecurityGroupIngress + RevokeSecurityGroupIngress
    "mutating": (50, 5),  # every other mutating call, e.g. RevokeSecurityGroupEgress
}


def bucket_of(action: str) -> str:
    """The API class whose bucket an EC2 action draws from."""
    if action.startswith(("Describe", "Get", "List", "Search")):
        return "non-mutating"
    if action in {"AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"}:
        return "sg-ingress"
    return "mutating"


def _throttled_body() -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
        "<Message>Request limit exceeded.</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment, without Nagle: otherwise every kept-alive
    # request waits ~40 ms for the client's delayed ACK and the proxy, not moto, dominates.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server: _Server

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the proxy answers thousands of requests."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        match = _SERVICE.search(self.headers.get("Authorization", ""))
        service = match.group(1) if match else ""
        action = ""
        if service == "ec2":
            fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            action = (fields.get("Action") or [""])[0]
            if not self.server.owner.admit(action):
                self._reply(503, [("Content-Type", "text/xml;charset=UTF-8")], _throttled_body())
                return
        started = time.perf_counter()
        status, headers, payload = self.server.owner.forward(
            self.command, self.path, dict(self.headers.items()), body
        )
        answered = time.perf_counter()
        self._reply(status, headers, payload)
        self.server.owner.spent(action or service or "other", started, answered)

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: EC2Proxy


class EC2Proxy:
    """The proxy on a free loopback port; ``url`` is what the tool under test talks to."""

    def __init__(self, upstream: str, buckets: dict[str, tuple[float, float]] | None) -> None:
        parts = urllib.parse.urlsplit(require_loopback(upstream))
        self._upstream = (parts.hostname or LOOPBACK, parts.port or 80)
        self._buckets = {name: Bucket(b, r) for name, (b, r) in (buckets or {}).items()}
        self.allowed: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.upstream_seconds: dict[str, float] = defaultdict(float)
        # perf_counter of the first request and of the last answer, per action
        self.first_seen: dict[str, float] = {}
        self.last_done: dict[str, float] = {}
        self._count_lock = threading.Lock()
        self._local = threading.local()
        self._server = _Server((LOOPBACK, 0), _Handler)
        self._server.owner = self
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> EC2Proxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def admit(self, action: str) -> bool:
        """Count the call; False when its bucket is empty (the caller answers 503)."""
        bucket = self._buckets.get(bucket_of(action))
        ok = bucket is None or bucket.take()
        with self._count_lock:
            (self.allowed if ok else self.throttled)[action] += 1
        return ok

    def spent(self, action: str, started: float, answered: float) -> None:
        """Record one forwarded request: when it came in and when moto_server answered."""
        with self._count_lock:
            self.upstream_seconds[action] += answered - started
            self.first_seen[action] = min(self.first_seen.get(action, started), started)
            self.last_done[action] = max(self.last_done.get(action, answered), answered)

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to moto_server on this thread's connection; return its answer."""
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in range(2):  # a kept-alive connection the server closed: reconnect once
            conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(*self._upstream, timeout=300)
                self._local.conn = conn
            try:
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
                payload = response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            return response.status, response.getheaders(), payload
        raise RuntimeError("unreachable")  # pragma: no cover

    def counts(self) -> dict[str, dict[str, int]]:
        """EC2 requests per action: ``allowed`` (forwarded), ``throttled`` (answered 503)."""
        with self._count_lock:
            return {
                "allowed": dict(sorted(self.allowed.items())),
                "throttled": dict(sorted(self.throttled.items())),
            }

    def timeline(self) -> dict[str, tuple[float, float]]:
        """(first request in, last answer out) per action, ``time.perf_counter`` values."""
        with self._count_lock:
            return {k: (self.first_seen[k], self.last_done[k]) for k in self.first_seen}

    def server_seconds(self) -> dict[str, float]:
        """Seconds moto_server spent answering, per EC2 action (other services by name)."""
        with self._count_lock:
            return {k: round(v, 3) for k, v in sorted(self.upstream_seconds.items())}
