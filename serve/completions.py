"""``POST /v1/completions`` between the request's fields and the engine: plans from the checked
fields, and the answer in OpenAI's shape, whole or as server-sent events.

A choice's text is what follows the prompt (``echo`` prepends the prompt), cut before the first
``stop`` string it contains. Tokens are characters: a prompt counts BOS and its characters, a
choice its draws, the ending BOS included.
"""

from __future__ import annotations

import json
import time
from operator import itemgetter
from json.encoder import encode_basestring as _quote  # a JSON string, as json.dumps(ensure_ascii=False) writes it

from typing import Callable

from mgpt.runtime import Generator, ModelError, rejection, sampling
from mgpt.runtime.plan import Plan
from mgpt.runtime.tracing import MAX_TRACES

from .engine import Engine, Request
from .errors import ApiError
from .schema import SET_CONTROLS, Form

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# the runtime's names for the arguments its errors are about -> the request's fields
PARAMS = {"prefix": "prompt", "max_length": "max_tokens"}


UNPLANNED = (*SET_CONTROLS, "seed")  # sampling options that a Plan does not hold (as its seed 0 is kept)


def start(engine: Engine, form: Form, plan_key: Callable[[dict], tuple], values: dict
          ) -> tuple[Request, dict, Callable | None]:
    """A Request for the checked ``values`` with its plans made (422 for an option the model cannot
    take, e.g. a prompt character outside its vocabulary), what the answer needs to know, and for
    requests with set controls (``novel``, ``unique``, ``exclude``) or ``trace`` the work that
    draws their choices (and traces) with the Generator itself instead of the shared batches (None
    for the others).
    A plan for the options with seed 0 is made once (checks, encoding, the constraint) and kept
    by ``plan_key(values)``: a server's requests mostly repeat their options, only the seed differs."""
    generator: Generator = engine.generator
    prompts = values["prompt"] if isinstance(values["prompt"], list) else [values["prompt"]]
    sets = values["novel"] or values["unique"] or values["exclude"]
    whole = sets or values["trace"]  # drawn by the Generator itself, on a worker thread
    if values["trace"] and values["n"] > MAX_TRACES:
        raise ApiError(422, f"trace gives each choice's draws step by step, a few kilobytes each: at most "
                       f"{MAX_TRACES} choices per prompt with trace, not n={values['n']}; lower n", "n", "invalid_value")
    seed = values["seed"]
    if seed is None:
        seed = sampling.new_seed()
    request = Request(engine, values["stream"])
    longest = generator.block_size - len(values["labels"] or ())
    settings = plan_key(values)
    plans = []
    for prompt in prompts:
        max_length = None if values["max_tokens"] is None else max(1, min(len(prompt) + values["max_tokens"], longest))
        key = (prompt, max_length, settings)
        plan = engine.plans.get(key)
        if plan is None or whole:
            plan = new_plan(generator, form, values, prompt, max_length)
            engine.keep_plan(key, plan)
        plan = plan.with_seed(seed)
        plans.append((prompt, plan))
        request.add(plan, values["n"])
    stops = values["stop"]
    # the id: fresh per request and per process, as seeds are
    answer = {"id": f"cmpl-{sampling.new_seed():016x}", "created": int(time.time()), "model": values["model"],
              "seed": seed, "n": values["n"], "echo": values["echo"],
              "stops": [stops] if isinstance(stops, str) else list(stops or ()),
              "usage": bool((values["stream_options"] or {}).get("include_usage"))}
    work = None
    if whole:
        options = {option: values[name] for name, option in form.options if option != "seed"}

        def work():
            for part, (prompt, plan) in zip(request.parts, plans):
                mine = dict(options, prefix=prompt, max_length=plan.length - plan.offset, seed=seed)
                texts = generator.generate(values["n"], **mine)
                part.whole([text[len(prompt):] for text in texts])
                if values["trace"]:
                    part.traces = [generator.trace(index=i, **mine) for i in range(values["n"])]
    return request, answer, work


def plan_key(form: Form) -> Callable[[dict], tuple]:
    """A function of a request's checked values: the options its plans depend on, hashable."""
    names = [name for name, option in form.options if option not in UNPLANNED]
    get = itemgetter(*names)
    lists = [i for i, name in enumerate(names) if "array" in form.fields[name].schema.get("type", ())]

    def key(values: dict) -> tuple:
        settings = get(values)
        if any(type(settings[i]) is list for i in lists):
            settings = tuple(tuple(v) if type(v) is list else v for v in settings)
        return settings

    return key


def new_plan(generator: Generator, form: Form, values: dict, prompt: str, max_length: int | None) -> Plan:
    """The plan (seed 0) of the request's options for ``prompt``; 422 for an option the model
    cannot take, and for set controls it cannot meet (a model without the novelty filter)."""
    options = {option: values[name] for name, option in form.options}
    chosen = {name: options.pop(name) for name in SET_CONTROLS}
    try:
        plan = generator.plan(prefix=prompt, max_length=max_length, **{**options, "seed": 0})
        if chosen["novel"] or chosen["unique"] or chosen["exclude"]:
            rejection.check_set_options(**chosen)
            if chosen["novel"]:
                generator.novelty()  # a model without the filter: ModelError now, not in a thread
    except (TypeError, ValueError, ModelError) as e:
        name = str(e).split(" ", 1)[0].strip("'")
        raise ApiError(422, str(e), PARAMS.get(name, name if name in form.fields else None), "invalid_value") from None
    return plan


def cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` before the first of ``stops`` in it, and whether one was found."""
    ends = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(ends)], True) if ends else (text, False)


def usage(request: Request) -> dict:
    prompt = sum(len(part.plan.context) for part in request.parts)
    completion = sum(part.tokens for part in request.parts)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def body(request: Request, answer: dict, used: dict | None = None) -> bytes:
    """The whole answer, once every sample has ended (``used``: its usage, if already counted).

    Written out rather than through json.dumps: at n=1 building and encoding the dictionaries was
    ~7% of a request's time in the server; the strings go through the json module's own escaping
    (what json.dumps(ensure_ascii=False) does), and a test holds the two to the same JSON."""
    choices, n, stops = [], answer["n"], answer["stops"]
    for i, part in enumerate(request.parts):
        prefix = part.plan.prefix if answer["echo"] else ""
        for slot, (text, reason) in enumerate(zip(part.texts_, part.reasons)):
            if stops:
                text, stopped = cut(text, stops)
                reason = "stop" if stopped else reason
            traced = f',"trace":{_json(part.traces[slot])}' if part.traces else ""
            choices.append(f'{{"text":{_quote(prefix + text)},"index":{i * n + slot},"logprobs":null,'
                           f'"finish_reason":"{reason}"{traced}}}')
    used = used or usage(request)
    return (f'{{"id":"{answer["id"]}","object":"text_completion","created":{answer["created"]},'
            f'"model":{_quote(answer["model"])},"choices":[{",".join(choices)}],'
            f'"usage":{{"prompt_tokens":{used["prompt_tokens"]},"completion_tokens":{used["completion_tokens"]},'
            f'"total_tokens":{used["total_tokens"]}}},"seed":{answer["seed"]}}}').encode()


async def whole_events(request: Request, answer: dict):
    """The answer of a request drawn whole (set controls) as server-sent events: one chunk of every
    choice's text, a usage chunk if asked for, then ``[DONE]``."""
    data = json.loads(body(request, answer))
    data.pop("usage")
    yield b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"
    if answer["usage"]:
        data["choices"], data["usage"] = [], usage(request)
        yield b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def events(request: Request, answer: dict):
    """The answer as server-sent events: a chunk per step with the choices that drew, each choice's
    last with its finish_reason, a usage chunk if asked for, then ``[DONE]``."""
    n, stops, parts = answer["n"], answer["stops"], request.parts
    head = {"id": answer["id"], "object": "text_completion", "created": answer["created"], "model": answer["model"]}

    def chunk(choices, **extra) -> bytes:
        return b"data: " + json.dumps({**head, "choices": choices, **extra, "seed": answer["seed"]},
                                      ensure_ascii=False).encode() + b"\n\n"

    base = {id(part): i * n for i, part in enumerate(parts)}
    if answer["echo"]:
        yield chunk([{"text": part.plan.prefix, "index": base[id(part)] + slot, "logprobs": None,
                      "finish_reason": None} for part in parts for slot in range(n)])
    sent = {}  # choice index -> characters of its text sent so far (with stop strings: all but a possible start of one)
    stopped = set()
    left = n * len(parts)
    while left:
        item = await request.events.get()
        if item is None:  # the request failed: the handler ends the stream
            return
        part, drawn = item
        choices = []
        for slot, text, reason in drawn:
            index = base[id(part)] + slot
            if reason is not None:
                left -= 1
            if index in stopped:
                continue
            if stops:
                so_far = "".join(part.sofar[slot])
                kept, found = cut(so_far, stops)
                if found:
                    reason = "stop"
                    stopped.add(index)
                elif reason is None:  # hold back an end that may begin a stop string
                    hold = max((k for s in stops for k in range(1, len(s)) if kept.endswith(s[:k])), default=0)
                    kept = kept[: len(kept) - hold]
                text = kept[sent.get(index, 0):]
                sent[index] = len(kept)
            if text or reason is not None:
                choices.append({"text": text, "index": index, "logprobs": None, "finish_reason": reason})
        if choices:
            yield chunk(choices)
    if answer["usage"]:
        yield chunk([], usage=usage(request))
    yield b"data: [DONE]\n\n"
