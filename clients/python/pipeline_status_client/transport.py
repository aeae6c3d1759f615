"""One HTTP request with the standard library (urllib), signed per attempt; no retries here.

An attempt has ONE deadline, ``timeout`` seconds after it starts, over everything it waits for:
resolving the host, connecting, sending, the status line and headers, and the body to its last
byte. urllib's own ``timeout`` is per socket operation, so a body trickled one byte every 1.5 s
never trips ``timeout=2.0``; here every socket operation gets only the time left
(:class:`_DeadlineSocket`), and name resolution runs in a helper thread that is given up on at
the deadline.
"""
import http.client
import io
import ipaddress
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .contract import HEADER_IDEMPOTENCY_KEY, HEADER_RETRY_AFTER, HEADER_SECRET
from .errors import StatusHttpError, StatusNetworkError
from .retry import parse_retry_after
from .signing import signature_headers, webhook_message_id

USER_AGENT = "pipeline-status-client-python/0.1.0"


class UnreadableAnswer(dict):
    """A 2xx answer whose body is not a JSON object (a proxy's page, an empty body, a JSON array):
    an empty ``dict``, so a caller that reads members finds none, with ``is_json`` saying whether
    the body was JSON at all (the TypeScript client's "is not JSON" or "does not match the
    contract")."""

    def __init__(self, is_json: bool) -> None:
        super().__init__()
        self.is_json = is_json


@dataclass(frozen=True)
class Request:
    """One request of the contract. ``route`` is the path after the base path (``run_1/status``);
    ``unique`` names the message: the Idempotency-Key of an update, kept across its retries."""

    method: str
    route: str
    unique: str
    body: Optional[bytes] = None


class Transport:
    """Sends one :class:`Request` to ``{base_url}{base_path}/{route}`` and returns the JSON answer.

    ``timeout`` is in seconds, per attempt: one deadline over resolving, connecting, sending, the
    headers and the whole body. Sends ``X-Webhook-Secret`` when ``secret`` is set and
    signs every attempt with a fresh timestamp when ``signing_key`` is set. Adds what
    ``trace_headers`` returns (W3C Trace Context: ``trace_context.py``) to every request.
    """

    def __init__(
        self,
        base_url: str,
        base_path: str,
        secret: Optional[str],
        signing_key: Optional[bytes],
        timeout: float,
        trace_headers: Optional[Callable[[], Dict[str, str]]] = None,
    ):
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        base_url = base_url.rstrip("/")
        # The demo and the Express example print the URL with the base path (issue 10 item 6):
        # accept it instead of doubling the path.
        if self.base_path and base_url.endswith(self.base_path):
            base_url = base_url[: -len(self.base_path)]
        self.base_url = base_url
        self.secret = secret
        self.signing_key = signing_key
        self.timeout = timeout
        self.trace_headers = trace_headers

    def url(self, route: str) -> str:
        """The absolute URL of a route; the run id is percent-encoded where it must be, and a
        query (``runs?tag=x``, already encoded) is kept as it is."""
        path, mark, query = route.partition("?")
        return f"{self.base_url}{self.base_path}/{urllib.request.quote(path, safe='/:~.-_')}{mark}{query}"

    def headers(self, request: Request, accept: str = "application/json") -> Dict[str, str]:
        """The headers of one attempt: ``User-Agent``, ``Accept``, the secret, the idempotency key
        of a write, and a fresh signature when the client signs (also used by the run watch's stream)."""
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        if request.method != "GET":
            headers[HEADER_IDEMPOTENCY_KEY] = request.unique
        if self.secret:
            headers[HEADER_SECRET] = self.secret
        if self.trace_headers is not None:
            headers.update(self.trace_headers())
        if self.signing_key is not None:
            # The signed route is the path alone, without a list's query.
            message_id = webhook_message_id(request.method, request.route.partition("?")[0], request.unique)
            headers.update(signature_headers(self.signing_key, message_id, request.body or b""))
        return headers

    def send(self, request: Request) -> Dict[str, Any]:
        """The decoded JSON of a 2xx answer; an :class:`UnreadableAnswer` when it is not a JSON
        object. Raises :class:`StatusHttpError` for any other status and
        :class:`StatusNetworkError` when there was no answer."""
        headers = self.headers(request)
        what = f"{request.method} {self.base_path}/{request.route}"
        http_request = urllib.request.Request(self.url(request.route), data=request.body, headers=headers, method=request.method)
        # The attempt's deadline; the connection classes below read it from the request.
        setattr(http_request, _DEADLINE, time.monotonic() + self.timeout)
        try:
            with _OPENER.open(http_request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read() if error.fp is not None else b""
            problem = _decode(raw)
            detail = ""
            if isinstance(problem, dict):
                detail = f" {problem.get('code') or ''}: {problem.get('detail') or problem.get('title') or ''}".rstrip(": ")
            raise StatusHttpError(
                f"{what} answered {error.code}{detail}",
                error.code,
                problem if isinstance(problem, dict) else None,
                parse_retry_after(error.headers.get(HEADER_RETRY_AFTER) if error.headers else None),
            ) from None
        except (socket.timeout, TimeoutError) as error:
            raise StatusNetworkError(f"{what} timed out after {self.timeout:g} s", True, f"timed out after {self.timeout:g} s") from error
        except urllib.error.URLError as error:
            timed_out = isinstance(error.reason, (socket.timeout, TimeoutError))
            raise StatusNetworkError(f"{what} got no answer: {error.reason}", timed_out, _network_cause(error.reason, self.timeout)) from error
        except (ConnectionError, OSError) as error:
            raise StatusNetworkError(f"{what} got no answer: {error}", False, _network_cause(error, self.timeout)) from error
        try:
            decoded = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):  # an empty body too
            return UnreadableAnswer(False)
        return decoded if isinstance(decoded, dict) else UnreadableAnswer(True)


_DEADLINE = "pipeline_status_deadline"


def _remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; raises :class:`TimeoutError` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _resolve(host: str, port: int, deadline: float) -> List[Tuple[Any, ...]]:
    """``getaddrinfo`` bounded by the deadline: it cannot be interrupted, so it runs in a daemon
    thread that is left behind when the deadline passes."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:  # an address needs no lookup, so no thread
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    result: Dict[str, Any] = {}

    def lookup() -> None:
        try:
            result["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=lookup, name="pipeline-status-resolve", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise TimeoutError("timed out")
    if "error" in result:
        raise result["error"]
    return result["infos"]


def _connect(address: Tuple[str, int], deadline: float, source_address: Optional[Tuple[str, int]]) -> socket.socket:
    """``socket.create_connection`` within the deadline, name resolution included."""
    host, port = address
    last: Optional[OSError] = None
    for family, kind, proto, _, sockaddr in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as error:
            sock.close()
            if isinstance(error, TimeoutError):
                raise
            last = error
    raise last or OSError(f"getaddrinfo returned nothing for {host}")


class _DeadlineSocket:
    """A connected socket whose every send and receive gets only the time left before the
    deadline, so the whole exchange, not each operation, is bounded. Everything else is the
    socket's own."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _arm(self) -> None:
        self._sock.settimeout(_remaining(self._deadline))

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", buffering: Optional[int] = None, **_: Any) -> io.BufferedReader:
        # The socket's own unbuffered reader (so closing follows the socket's reference count,
        # which urllib relies on), read through the deadline.
        raw = self._sock.makefile("rb", buffering=0)
        return io.BufferedReader(_DeadlineReader(raw, self), buffering or io.DEFAULT_BUFFER_SIZE)


class _DeadlineReader(io.RawIOBase):
    """The socket's raw reader, each read armed with the time left."""

    def __init__(self, raw: Any, sock: _DeadlineSocket):
        super().__init__()
        self._raw = raw
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Optional[int]:
        self._sock._arm()  # noqa: SLF001 (the reader belongs to the socket)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _with_deadline(base: type) -> type:
    """``base`` (``HTTPConnection`` or ``HTTPSConnection``) connecting and exchanging within a deadline."""

    class DeadlineConnection(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, deadline: float, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._deadline = deadline
            self._create_connection = lambda address, _timeout, source=None: _connect(address, deadline, source)

        def connect(self) -> None:
            self.timeout = _remaining(self._deadline)  # the TLS handshake's bound
            super().connect()
            self.sock = _DeadlineSocket(self.sock, self._deadline)

    return DeadlineConnection


_HTTPConnection = _with_deadline(http.client.HTTPConnection)
_HTTPSConnection = _with_deadline(http.client.HTTPSConnection)


def _connection_class(base: type, request: urllib.request.Request) -> Callable[..., Any]:
    deadline = getattr(request, _DEADLINE, None)
    if deadline is None:
        # A redirect's new request: a deadline of its own, as long as the attempt's timeout.
        timeout = request.timeout if isinstance(request.timeout, (int, float)) else 30.0  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
    return lambda host, **kwargs: base(host, deadline=deadline, **kwargs)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_connection_class(_HTTPConnection, req), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_connection_class(_HTTPSConnection, req), req, context=self._context,  # type: ignore[attr-defined]
                            check_hostname=self._check_hostname)  # type: ignore[attr-defined]


#: urllib as usual (proxies from the environment, redirects), with the per-attempt deadline.
_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def _network_cause(reason: object, timeout: float) -> str:
    """The short cause of a request without an answer, named as Node names it where it can."""
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (ECONNREFUSED)"
    if isinstance(reason, ConnectionResetError):
        return "connection reset (ECONNRESET)"
    if isinstance(reason, socket.gaierror):
        return f"host not found ({reason})"
    return str(reason) or type(reason).__name__


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return None
