"""Servers for the integration tests: the package's mock server and the Express example (as
child processes, through tsx, from the repository this package lives in), and a small
recording, fault-injecting HTTP proxy in front of either.

They need a checkout of the repository with Node.js and its packages installed (``npm ci``), and
for the Express example the Prisma client generated (``node scripts/prisma-generate.mjs``;
``npm test`` does it). Without them :func:`require_servers` skips the tests that need a server,
naming what is missing and the command that installs it, or fails them when
``PIPELINE_STATUS_REQUIRE_ALL`` is set (CI). Environment: ``PSC_NODE`` (node binary, default
``node``); ``PSC_TEST_DATABASE_URL`` (a PostgreSQL database with nothing else in it, which the
vitest wrapper creates); without it the Express example runs on embedded PGlite in a temporary
folder.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from unittest import SkipTest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PACKAGE = os.path.join(ROOT, "clients", "python")
TSX = os.path.join(ROOT, "node_modules", "tsx", "dist", "cli.mjs")
SECRET = "python-client-test-secret"
PRISMA_CLIENT = os.path.join(ROOT, "src", "generated", "prisma", "client.ts")
#: Set (not empty, not ``0``) in CI: a missing requirement fails the tests instead of skipping them,
#: as in the repository's vitest suite (test/support/optional-tools.ts).
REQUIRE_ALL_VARIABLE = "PIPELINE_STATUS_REQUIRE_ALL"


def node_binary() -> str:
    """``PSC_NODE``, else ``node``."""
    return os.environ.get("PSC_NODE") or "node"


def missing_for_servers(express: bool) -> Optional[str]:
    """What this machine lacks to start the mock server (``express``: the Express example too),
    with the command that gets it; ``None`` when nothing is missing."""
    node = node_binary()
    if shutil.which(node) is None:
        return f"no Node.js at {node} (install Node.js 22.12 or later, or set PSC_NODE to its binary)"
    if not os.path.isfile(TSX):
        return f"no {os.path.relpath(TSX, ROOT)} (run `npm ci` in {ROOT})"
    if express and not os.path.isfile(PRISMA_CLIENT):
        return f"no generated Prisma client at {os.path.relpath(PRISMA_CLIENT, ROOT)} (run `node scripts/prisma-generate.mjs` in {ROOT})"
    return None


_said: set = set()


def require_servers(express: bool = False) -> None:
    """For a ``setUpClass`` of tests that need a server: skips them with the reason when this
    machine cannot start it (:func:`missing_for_servers`), or fails them with it when
    ``PIPELINE_STATUS_REQUIRE_ALL`` is set. The reason is also written to stderr once, since
    unittest names skip reasons only with ``-v``."""
    missing = missing_for_servers(express)
    if missing is None:
        return
    server = "the Express example" if express else "the mock server"
    reason = f"needs {server} from this repository: {missing}"
    required = os.environ.get(REQUIRE_ALL_VARIABLE, "")
    if required not in ("", "0"):
        raise RuntimeError(f"{reason}; not skipped because {REQUIRE_ALL_VARIABLE} is set")
    if reason not in _said:
        _said.add(reason)
        sys.stderr.write(f"\nskipped: the tests that {reason.replace('needs ', 'need ', 1)}\n")
    raise SkipTest(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """A child process that prints ``listening on <origin>`` when ready."""

    def __init__(self, args: List[str], env: Optional[Dict[str, str]] = None, ready_timeout: float = 120.0):
        # Its stderr goes to a file: a server that does not start is reported with its own words.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [node_binary(), TSX, *args], cwd=ROOT, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        self.origin = ""
        deadline = time.monotonic() + ready_timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on (http://[^/\s]+)", line)
            if match:
                self.origin = match.group(1)
                break
        if not self.origin:
            self.stop(keep_stderr=True)
            self._stderr.seek(0)
            said = self._stderr.read().strip()[-2000:]
            self._stderr.close()
            raise RuntimeError(f"server {args} did not start (exit {self.process.poll()})" + (f"; its stderr:\n{said}" if said else ""))
        # Keep reading stdout so the child never blocks on a full pipe.
        self._reader = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._reader.start()

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.origin).port or 0)

    def stop(self, keep_stderr: bool = False) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not keep_stderr:
            self._stderr.close()


#: Two pipelines beside ``default``, as ``--pipelines`` and ``PIPELINES_FILE`` read them: the
#: servers of these tests always have them, so the original runner is shown to work unchanged
#: against a server with several pipelines (its runs are in ``default``).
PIPELINES_FILE = os.path.join(os.path.dirname(__file__), "pipelines.json")


def start_mock(port: int = 0) -> ServerProcess:
    """``pipeline-status mock`` (mock-server/bin.ts) accepting :data:`SECRET`, with :data:`PIPELINES_FILE`."""
    return ServerProcess(["mock-server/bin.ts", "mock", "--port", str(port), "--secret", SECRET, "--quiet",
                          "--pipelines", PIPELINES_FILE])


class ExpressDatabase:
    """Where the Express example keeps its data, the same across restarts of the example."""

    def __init__(self) -> None:
        self.url = os.environ.get("PSC_TEST_DATABASE_URL", "")
        self._folder = None if self.url else tempfile.TemporaryDirectory(prefix="psc-pglite-")

    @property
    def kind(self) -> str:
        return "postgres" if self.url else "pglite"

    def env(self) -> Dict[str, str]:
        if self.url:
            return {"DATABASE_URL": self.url}
        assert self._folder is not None
        return {"DATABASE_URL": "", "DATA_DIR": self._folder.name}

    def cleanup(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()


def start_express(database: ExpressDatabase, port: int = 0, signing_secret: str = "") -> ServerProcess:
    """The Express example on PostgreSQL (or PGlite) accepting :data:`SECRET`, with
    :data:`PIPELINES_FILE`; with ``signing_secret``, the Express adapter accepting only requests
    signed with it."""
    return ServerProcess(["test/clients/serve-express.ts"],
                         {**database.env(), "PORT": str(port), "WEBHOOK_SECRET": SECRET, "SIGNING_SECRET": signing_secret,
                          "PIPELINES_FILE": PIPELINES_FILE})


@dataclass
class Recorded:
    """One request the proxy received, and what it answered."""

    method: str
    path: str
    headers: Dict[str, str]  # names in lower case
    body: bytes
    status: int

    def json(self) -> object:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Fault:
    """Answer ``status`` (with ``Retry-After: retry_after``) or drop the connection (``status`` 0)
    instead of forwarding, for the next ``times`` requests whose path contains ``path_part``.
    ``forwarded`` (with ``status`` 0): forward the request, then drop the connection instead of
    answering, so the server took it and the client never learns how (recorded with status 0).
    ``body``: answer it (labelled ``application/json``, whatever it holds) instead of a problem."""

    path_part: str
    status: int
    times: int = 1
    retry_after: Optional[str] = None
    forwarded: bool = False
    body: Optional[bytes] = None


@dataclass
class Proxy:
    """A recording, fault-injecting HTTP proxy on 127.0.0.1 in front of ``target`` (an origin)."""

    target: str
    port: int = 0
    records: List[Recorded] = field(default_factory=list)
    faults: List[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    fault = next((f for f in proxy.faults if f.path_part in self.path and f.times > 0), None)
                    if fault:
                        fault.times -= 1
                if fault and fault.status == 0:
                    if fault.forwarded:
                        proxy.forward(self.command, self.path, headers, body)
                    proxy.records.append(Recorded(self.command, self.path, headers, body, 0))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault:
                    payload = fault.body if fault.body is not None else json.dumps({"title": "Injected fault", "status": fault.status}).encode()
                    proxy.records.append(Recorded(self.command, self.path, headers, body, fault.status))
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json" if fault.body is not None else "application/problem+json")
                    self.send_header("Content-Length", str(len(payload)))
                    if fault.retry_after is not None:
                        self.send_header("Retry-After", fault.retry_after)
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                status, answer_headers, payload = proxy.forward(self.command, self.path, headers, body)
                proxy.records.append(Recorded(self.command, self.path, headers, body, status))
                self.send_response(status)
                for name, value in answer_headers:
                    if name.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forward(self, method: str, path: str, headers: Dict[str, str], body: bytes) -> Tuple[int, List[Tuple[str, str]], bytes]:
        """Sends one request on to the target: its status, headers and body."""
        target = urllib.parse.urlsplit(self.target)
        upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
        try:
            forward = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(method, path, body=body if body or method == "POST" else None, headers=forward)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            upstream.close()

    def updates(self, run_id: str) -> List[Recorded]:
        """The writes of one run that the server answered (not the injected faults)."""
        return [r for r in self.records if r.method == "POST" and f"/{run_id}/" in r.path and r.status not in (0,)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_python(script: str, env: Dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Runs a Python script of this folder in a new process with the package on its path."""
    return subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), script)],
        env={**os.environ, "PYTHONPATH": PACKAGE, **env}, capture_output=True, text=True, timeout=timeout,
    )
