"""The requests' fields, each written once as a JSON Schema fragment: the OpenAPI document shows
them as they are, and ``check`` holds requests to them. mgpt's sampling options among the fields
name the ``Generator.plan`` keyword they go to (``option``), so a new sampling control needs only a
field here: the runtime checks its value as it checks a Python caller's.

The schemas use a small part of JSON Schema, all that ``check`` reads: type (one or a list),
minimum, maximum, exclusiveMinimum, minLength, maxLength, minItems, maxItems, items, enum, anyOf,
and objects with properties, required and additionalProperties false.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, NamedTuple

from .errors import ApiError

SEED_RANGE = (-(2**63), 2**64 - 1)  # any int64 or uint64: mgpt takes a seed modulo 2^64


class Field(NamedTuple):
    schema: dict
    default: Any = None
    option: str | None = None  # the Generator.plan keyword this field's value goes to, if any


def _text_list(max_items: int, max_length: int | None = None) -> dict:
    item = {"type": "string"} if max_length is None else {"type": "string", "maxLength": max_length}
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}]}


def completion_fields(max_n: int, max_prompts: int, max_tokens: int) -> dict[str, Field]:
    """The fields of ``POST /v1/completions``: OpenAI's that mgpt can honour, then mgpt's own."""
    neutral = "accepted for OpenAI's clients at this value only: mgpt has no such control"
    return {
        "model": Field({"type": "string", "description": "a name that GET /v1/models lists"}),
        "prompt": Field({**_text_list(max_prompts), "description":
                         "the beginning of every sample (a list: one set of n choices per prompt)"}, ""),
        "n": Field({"type": "integer", "minimum": 1, "maximum": max_n, "description": "samples per prompt"}, 1),
        "max_tokens": Field({"type": ["integer", "null"], "minimum": 1, "maximum": max_tokens, "description":
                             "characters to draw at most after the prompt (the model's block size bounds "
                             "prompt and sample together) [default: up to the block size]"}),
        "temperature": Field({"type": "number", "minimum": 0, "description":
                              "softmax temperature; 0 is greedy [default: mgpt's 0.5]"}, 0.5, "temperature"),
        "top_p": Field({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1,
                        "description": "nucleus sampling: the most likely tokens reaching this mass"}, None, "top_p"),
        "seed": Field({"type": ["integer", "null"], "minimum": SEED_RANGE[0], "maximum": SEED_RANGE[1], "description":
                       "the same seed and options give the same samples, alone or among any other requests "
                       "[default: a fresh seed, returned in the response]"}, None, "seed"),
        "stream": Field({"type": "boolean", "description": "server-sent events, one per step, then [DONE]"}, False),
        "stream_options": Field({"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}},
                                 "additionalProperties": False}),
        "stop": Field({"anyOf": [{"type": "null"}, *_text_list(4, 64)["anyOf"]], "description":
                       "a choice ends before the first of these strings in its text"}),
        "echo": Field({"type": "boolean", "description": "each choice's text starts with its prompt"}, False),
        "best_of": Field({"type": ["integer", "null"], "enum": [1, None], "description": neutral}),
        "logprobs": Field({"type": "null", "description": neutral}),
        "presence_penalty": Field({"type": "number", "enum": [0], "description": neutral}, 0),
        "frequency_penalty": Field({"type": "number", "enum": [0], "description": neutral}, 0),
        "logit_bias": Field({"type": ["object", "null"], "additionalProperties": False, "description": neutral}),
        "user": Field({"type": "string", "maxLength": 256, "description": "ignored"}, ""),
        # mgpt's own: the runtime's sampling controls under their Generator.generate names
        "top_k": Field({"type": ["integer", "null"], "minimum": 1, "description":
                        "draw among the k most likely tokens only"}, None, "top_k"),
        "labels": Field({"type": ["array", "null"], "items": {"type": "string", "maxLength": 256}, "maxItems": 64,
                         "description": "a labeled model's labels, one per group (GET /v1/models lists them)"},
                        None, "labels"),
        "min_length": Field({"type": ["integer", "null"], "minimum": 0, "description":
                             "samples of at least this many characters, the prompt included"}, None, "min_length"),
        "suffix": Field({"type": "string", "maxLength": 256, "description":
                         "every sample ends with these characters (they are part of the choice's text, "
                         "unlike OpenAI's insertion suffix)"}, "", "suffix"),
        "contains": Field({"type": "string", "maxLength": 256, "description":
                           "every sample contains these characters"}, "", "contains"),
        "pattern": Field({"type": ["string", "null"], "maxLength": 1000, "description":
                          "every sample matches this pattern whole (docs/sampling-controls.md: the subset)"},
                         None, "pattern"),
        "novel": Field({"type": "boolean", "description": "never a training document (the model's novelty filter)"},
                       False, "novel"),
        "unique": Field({"type": "boolean", "description": "no sample twice among a prompt's choices"},
                        False, "unique"),
        "exclude": Field({"type": ["array", "null"], "items": {"type": "string", "maxLength": 256},
                          "maxItems": 10000, "description": "never one of these strings"}, None, "exclude"),
        "trace": Field({"type": "boolean", "description":
                        "each choice carries its trace, the sample's draws step by step as Generator.trace "
                        "gives them (docs/sampling-controls.md#trace); n at most 100"}, False),
        "max_attempts": Field({"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000, "description":
                               "attempts at most for novel, unique and exclude [default: max(1000, 50 n)]"},
                              None, "max_attempts"),
    }


# the set controls: a choice is the k-th accepted attempt, so such requests run through
# Generator.generate (on a worker thread) instead of the shared batches
SET_CONTROLS = ("novel", "unique", "exclude", "max_attempts")


def score_fields(max_texts: int, max_length: int) -> dict[str, Field]:
    """The fields of ``POST /v1/score``."""
    return {
        "model": Field({"type": "string", "description": "a name that GET /v1/models lists"}),
        "texts": Field({**_text_list(max_texts, max_length), "description":
                        "texts to score, each framed as in training: BOS, its characters, BOS"}),
    }


def _not_json(name):
    raise ValueError(f"{name} is not standard JSON")


_decode = json.JSONDecoder(parse_constant=_not_json).decode  # made once: json.loads with an option makes one per call


def parse(body: bytes) -> dict:
    """The JSON object of a request body; 400 if it is not one (NaN and Infinity are not JSON)."""
    try:
        value = _decode(body.decode(json.detect_encoding(body), "surrogatepass"))  # as json.loads reads bytes
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"the request body is not valid JSON ({str(e)[:120]}); send a JSON object",
                       code="invalid_json") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {_json_type(value)}", code="invalid_json")
    return value


class Form(NamedTuple):
    """A request body's fields, the names it must have, every field's default, the fields that
    are sampling options, (field, Generator keyword) each, and each field's quick test."""
    fields: dict[str, Field]
    required: tuple[str, ...]
    defaults: dict[str, Any]
    options: tuple[tuple[str, str], ...]
    quick: dict[str, Callable[[Any], bool]]

    @classmethod
    def of(cls, fields: dict[str, Field], required: tuple[str, ...]) -> Form:
        return cls(fields, required, {name: field.default for name, field in fields.items()},
                   tuple((name, field.option) for name, field in fields.items() if field.option),
                   {name: _quick(field.schema) for name, field in fields.items()})


def _quick(schema: dict) -> Callable[[Any], bool]:
    """A test that passes the common values ``_problem`` finds nothing wrong with, at a fraction of
    its cost (a request's few fields took ~5% of a one-sample request through it), and never one it
    would reject; what fails the test goes through ``_problem``. Schemas with other keywords than
    type, minimum, maximum and maxLength get a test that passes nothing."""
    if set(schema) - {"type", "minimum", "maximum", "maxLength", "description"}:
        return lambda value: False
    kinds = schema.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    lo, hi = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    longest = schema.get("maxLength", math.inf)
    strings, booleans, nulls = "string" in kinds, "boolean" in kinds, "null" in kinds
    ints, floats = bool(kinds & {"integer", "number"}), "number" in kinds  # 3.0 for an integer: the slow path

    def quick(value) -> bool:
        kind = type(value)
        if kind is str:
            return strings and len(value) <= longest
        if kind is int:
            return ints and lo <= value <= hi
        if kind is float:
            return floats and math.isfinite(value) and lo <= value <= hi
        if kind is bool:
            return booleans
        return value is None and nulls

    return quick


def check(form: Form, body: dict) -> dict:
    """``body``'s fields, checked against their schemas, with each missing one at its default.
    422 names the first field at fault: unknown, missing or not what its schema says."""
    fields = form.fields
    for name in body:
        if name not in fields:
            raise ApiError(422, f"unknown field {name[:60]!r}; the fields are {', '.join(fields)}", name[:60],
                           "unknown_field")
    for name in form.required:
        if name not in body:
            raise ApiError(422, f"the field {name!r} is required", name, "missing_field")
    values = dict(form.defaults)
    quick = form.quick
    for name, value in body.items():
        if quick[name](value):
            values[name] = value
            continue
        schema = fields[name].schema
        problem = _problem(schema, value)
        if problem:
            raise ApiError(422, f"{name} {problem}", name, "invalid_value")
        if isinstance(value, float) and value.is_integer() and "integer" in schema.get("type", ()):
            value = int(value)  # 3.0 given where an integer goes: the integer 3
        values[name] = value
    return values


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _is(kind: str, value) -> bool:
    if kind == "integer":  # JSON Schema's integers include numbers like 3.0
        return (isinstance(value, int) and not isinstance(value, bool)
                or isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return {"string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}[kind] is type(value)


def _problem(schema: dict, value) -> str | None:
    """What is wrong with ``value`` under ``schema`` (a phrase to follow the field's name), or None."""
    if "anyOf" in schema:
        problems = [_problem(option, value) for option in schema["anyOf"]]
        if all(problems):
            return min(problems, key=len) if len(problems) == 1 else " or ".join(problems)
        return None
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(_is(kind, value) for kind in kinds):
        return f"must be {' or '.join(kinds)}, got {_json_type(value)}"
    if value is None:
        return None
    if "enum" in schema and not any(value == v and type(value) is type(v) or (v == 0 and value == 0)
                                    for v in schema["enum"]):
        return f"must be one of {schema['enum']}, got {json.dumps(value)[:40]}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"must be <= {schema['maximum']}, got {value}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"must be > {schema['exclusiveMinimum']}, got {value}"
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            return f"must be at most {schema['maxLength']} characters long, got {len(value)}"
        if len(value) < schema.get("minLength", 0):
            return f"must be at least {schema['minLength']} characters long"
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            return f"must have at most {schema['maxItems']} items, got {len(value)}"
        if len(value) < schema.get("minItems", 0):
            return f"must have at least {schema['minItems']} item(s)"
        for i, item in enumerate(value):
            problem = _problem(schema.get("items", {}), item)
            if problem:
                return f"item {i} {problem}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key not in properties:
                if schema.get("additionalProperties", True) is False:
                    return f"has an unknown key {key[:40]!r}" + (f" (keys: {', '.join(properties)})" if properties else "")
                continue
            problem = _problem(properties[key], item)
            if problem:
                return f"key {key!r} {problem}"
    return None


def body_schema(form: Form) -> dict:
    """The JSON Schema of a request body of ``form``."""
    properties = {}
    for name, field in form.fields.items():
        properties[name] = dict(field.schema)
        if field.default is not None:
            properties[name].setdefault("default", field.default)
    return {"type": "object", "properties": properties, "required": list(form.required), "additionalProperties": False}
