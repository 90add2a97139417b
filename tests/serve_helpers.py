"""Real mgpt-serve processes on 127.0.0.1 for the tests (and the benchmark): started on a free port,
asked over raw HTTP, stopped with SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_SECONDS = 60  # generous: a loaded 2-core machine can take long to import and load models


class Server:
    """``mgpt-serve ARGS --port 0`` in a process of its own; ``port`` is the one it listens on."""

    def __init__(self, *args: str, env: dict | None = None):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="mgpt-serve-test-", suffix=".log", delete=False)
        command = [sys.executable, "-m", "mgpt.serve.cli", "--port", "0", "--log-level", "warning", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log,
                                        env={**os.environ, **(env or {})})
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            found = re.search(r"on http://127\.0\.0\.1:(\d+)/", self.output())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"mgpt-serve exited with {self.process.returncode}: {self.output()}")
            time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"mgpt-serve did not start within {START_SECONDS} s: {self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def request(self, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 60):
        """(status, headers, body bytes); a dict or list body is sent as JSON."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            connection.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post(self, path: str, body, headers: dict | None = None, timeout: float = 60):
        """(status, parsed JSON body)."""
        status, _, data = self.request("POST", path, body, headers, timeout)
        return status, json.loads(data)

    def get(self, path: str, headers: dict | None = None):
        status, _, data = self.request("GET", path, headers=headers)
        return status, data

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (killed after ``timeout`` seconds)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)
        return self.process.returncode
