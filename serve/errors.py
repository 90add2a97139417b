"""Errors as OpenAI's API gives them: ``{"error": {"message", "type", "param", "code"}}`` with an
HTTP status that names the mistake, so that OpenAI's clients raise their matching exceptions."""

from __future__ import annotations

import json

# status -> OpenAI's error type
TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 503: "server_error", 504: "timeout_error"}


class ApiError(Exception):
    """A request the server answers with an error: ``status``, a message that names the problem and
    the fix, the request field at fault (``param``) and a short machine-readable ``code``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> bytes:
        return json.dumps({"error": {"message": self.message, "type": TYPES.get(self.status, "server_error"),
                                     "param": self.param, "code": self.code}}).encode()
