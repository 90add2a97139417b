"""The OpenAPI 3.1 document of the service, made from the same field schemas the requests are
checked against (``schema``), so the two cannot disagree."""

from __future__ import annotations

from . import schema

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}

CHOICE = {"type": "object", "required": ["text", "index", "finish_reason"], "properties": {
    "text": {"type": "string"}, "index": {"type": "integer"}, "logprobs": {"type": "null"},
    "finish_reason": {"type": ["string", "null"], "enum": ["stop", "length", None]}}}

USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": {
    "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}}

COMPLETION = {"type": "object", "required": ["id", "object", "created", "model", "choices", "seed"], "properties": {
    "id": {"type": "string"}, "object": {"const": "text_completion"}, "created": {"type": "integer"},
    "model": {"type": "string"}, "choices": {"type": "array", "items": CHOICE}, "usage": USAGE,
    "seed": {"type": "integer", "description": "the seed used: send it again to get the same samples"}}}

MODEL = {"type": "object", "required": ["id", "object", "owned_by", "metadata"], "properties": {
    "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
    "owned_by": {"type": "string"}, "metadata": {"type": "object"}}}


def _errors(*statuses: int) -> dict:
    reasons = {400: "the body is not a JSON object", 401: "missing or wrong API key", 404: "no such model",
               413: "the body is over the limit", 422: "a field is unknown, missing or out of range",
               429: "too many requests in flight: retry after Retry-After seconds",
               504: "the request took longer than the server's limit"}
    return {str(s): {"description": reasons[s], "content": {"application/json": {"schema": ERROR}}} for s in statuses}


def _json(schema_: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema_}}}


def document(app) -> dict:
    keyed = [{"bearer": []}] if app.key is not None else []
    post_errors = _errors(400, 401, 404, 413, 422) if app.key is not None else _errors(400, 404, 413, 422)
    return {
        "openapi": "3.1.0",
        "info": {"title": "mgpt-serve", "version": "1",
                 "description": "OpenAI-compatible completions from mgpt models, the same samples for the same "
                                "seed whatever else runs."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": keyed,
        "paths": {
            "/v1/completions": {"post": {
                "summary": "Samples that follow a prompt, as OpenAI's completions API",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": schema.body_schema(app.completion_form)}}},
                "responses": {"200": {"description": "the choices (text/event-stream when stream is true)",
                                      "content": {"application/json": {"schema": COMPLETION},
                                                  "text/event-stream": {"schema": {"type": "string"}}}},
                              **post_errors, **_errors(429, 504)}}},
            "/v1/score": {"post": {
                "summary": "Mean negative log-likelihood (nats per token) of texts under a model",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": schema.body_schema(app.score_form)}}},
                "responses": {"200": _json({"type": "object", "required": ["nll", "tokens"], "properties": {
                    "object": {"const": "score"}, "model": {"type": "string"}, "nll": {"type": "number"},
                    "tokens": {"type": "integer"}, "texts": {"type": "integer"}}}, "the score"), **post_errors}}},
            "/v1/models": {"get": {"summary": "The models this server has",
                                   "responses": {"200": _json({"type": "object", "properties": {
                                       "object": {"const": "list"}, "data": {"type": "array", "items": MODEL}}},
                                       "the models"), **(_errors(401) if keyed else {})}}},
            "/v1/models/{model}": {"get": {"summary": "One model's metadata",
                                           "parameters": [{"name": "model", "in": "path", "required": True,
                                                           "schema": {"type": "string"}}],
                                           "responses": {"200": _json(MODEL, "the model"),
                                                         **_errors(*((401, 404) if keyed else (404,)))}}},
            "/health": {"get": {"summary": "Whether the server is up", "security": [],
                                "responses": {"200": _json({"type": "object"}, "up")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format)",
                                 "responses": {"200": {"description": "the metrics",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                               **(_errors(401) if keyed else {})}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": _json({"type": "object"}, "the document")}}},
        },
    }
