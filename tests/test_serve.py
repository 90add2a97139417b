"""mgpt-serve as its clients see it: real server processes on 127.0.0.1, OpenAI's own Python client,
raw HTTP for the faults, real sockets for disconnects, SIGTERM for the drain. The promise under
test: a response equals what mgpt-generate gives alone for the same model, seed and options,
whatever else the server runs at the time. No test asserts a timing."""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
openai = pytest.importorskip("openai", reason="the test extra is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="the test extra is not installed")
import hypothesis  # noqa: E402  (schemathesis brings it)

from mgpt.runtime import Generator  # noqa: E402
from serve_helpers import Server  # noqa: E402

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def server():
    server = Server("--model", "names", "--model", "names-large")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def keyed():
    server = Server(env={"MGPT_API_KEY": KEY})
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def models():
    return {"names": Generator("names"), "names-large": Generator("names-large")}


def client(server, key="unused"):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=key, max_retries=0, timeout=60)


def alone(models, body: dict) -> list[str]:
    """What Generator.generate draws alone for a completion request's options: the choices' texts."""
    gen = models[body["model"]]
    prompt = body.get("prompt", "")
    max_length = None
    if body.get("max_tokens") is not None:
        max_length = min(len(prompt) + body["max_tokens"], gen.block_size)
    controls = {k: body[k] for k in ("min_length", "suffix", "contains", "pattern", "novel", "unique", "exclude")
                if k in body}
    samples = gen.generate(body.get("n", 1), temperature=body.get("temperature", 0.5), top_k=body.get("top_k"),
                           top_p=body.get("top_p"), seed=body.get("seed"), prefix=prompt, max_length=max_length,
                           **controls)
    return [s[len(prompt):] for s in samples]


# ----------------------------------------------------------------------------- OpenAI's client

def test_openai_client_completions_equal_mgpt_generate(server):
    done = subprocess.run([sys.executable, "-m", "mgpt.runtime.cli", "-n", "20", "--seed", "7", "--format", "names"],
                          capture_output=True, text=True, check=True)
    completion = client(server).completions.create(model="names", prompt="", n=20, seed=7)
    assert [c.text for c in completion.choices] == done.stdout.splitlines()
    assert [c.index for c in completion.choices] == list(range(20))
    assert completion.object == "text_completion" and completion.model == "names"
    assert completion.model_extra["seed"] == 7
    assert completion.usage.prompt_tokens == 1  # BOS
    # each choice draws its characters and, unless it reached the block size, an ending BOS
    expected = sum(len(c.text) + (c.finish_reason == "stop") for c in completion.choices)
    assert completion.usage.completion_tokens == expected
    assert {c.finish_reason for c in completion.choices} <= {"stop", "length"}


def test_a_request_without_seed_gets_a_fresh_one_that_replays_it(server):
    api = client(server)
    first = api.completions.create(model="names", prompt="a", n=8, temperature=1.0)
    second = api.completions.create(model="names", prompt="a", n=8, temperature=1.0)
    assert first.model_extra["seed"] != second.model_extra["seed"]
    again = api.completions.create(model="names", prompt="a", n=8, temperature=1.0, seed=first.model_extra["seed"])
    assert [c.text for c in again.choices] == [c.text for c in first.choices]


def test_streamed_choices_are_the_whole_answer_piece_by_piece(server, models):
    body = dict(model="names-large", prompt="ma", n=6, seed=3, temperature=1.2)
    stream = client(server).completions.create(**body, stream=True, stream_options={"include_usage": True})
    texts, reasons, usage = [""] * 6, [None] * 6, None
    for chunk in stream:
        for choice in chunk.choices:
            assert reasons[choice.index] is None, "a choice went on after its finish_reason"
            texts[choice.index] += choice.text
            reasons[choice.index] = choice.finish_reason
        usage = chunk.usage or usage
    assert texts == alone(models, body)
    assert all(reasons)
    whole = client(server).completions.create(**body)
    assert usage.completion_tokens == whole.usage.completion_tokens and usage.prompt_tokens == 3


@pytest.mark.parametrize("body", [
    dict(model="names", prompt="jo", n=5, seed=11, temperature=0.8, max_tokens=3),
    dict(model="names", n=4, seed=2, temperature=1.5, top_p=0.9),
    dict(model="names-large", n=3, temperature=0),
    dict(model="names", n=7, seed=5, temperature=1.0, top_k=3),  # mgpt's own field, through extra_body
])
def test_options_give_what_the_runtime_gives_alone(server, models, body):
    extra = {"top_k": body["top_k"]} if "top_k" in body else None
    sent = {"prompt": "", **{k: v for k, v in body.items() if k != "top_k"}}
    completion = client(server).completions.create(**sent, extra_body=extra)
    assert [c.text for c in completion.choices] == alone(models, body)


def test_lone_one_sample_requests_are_the_same_samples(server, models):
    # one at a time, so the server is idle when each comes: the batch-1 loop draws it
    for seed in range(12):
        body = {"model": ["names", "names-large"][seed % 2], "n": 1, "seed": seed, "temperature": 0.3 + seed / 5,
                "prompt": ["", "a", "jo"][seed % 3], "max_tokens": [None, 3][seed % 2], "top_k": [None, 4][seed % 3 == 1]}
        status, answer = server.post("/v1/completions", body)
        assert status == 200 and [c["text"] for c in answer["choices"]] == alone(models, body), body
        choice = answer["choices"][0]
        longest = min(len(body["prompt"]) + (body["max_tokens"] or 99), models[body["model"]].block_size)
        assert choice["finish_reason"] == ("length" if len(body["prompt"] + choice["text"]) == longest else "stop")
        assert answer["usage"]["completion_tokens"] == len(choice["text"]) + (choice["finish_reason"] == "stop")


def test_prompt_lists_echo_and_stop(server, models):
    completion = client(server).completions.create(model="names", prompt=["a", "jo"], n=3, seed=4, echo=True)
    expected = [f"a{t}" for t in alone(models, dict(model="names", prompt="a", n=3, seed=4))]
    expected += [f"jo{t}" for t in alone(models, dict(model="names", prompt="jo", n=3, seed=4))]
    assert [c.text for c in completion.choices] == expected
    assert [c.index for c in completion.choices] == list(range(6))
    plain = alone(models, dict(model="names", n=40, seed=9))
    stopped = client(server).completions.create(model="names", n=40, seed=9, stop=["a", "e"], prompt="")
    unstopped = client(server).completions.create(model="names", n=40, seed=9, prompt="")
    for full, choice, whole in zip(plain, stopped.choices, unstopped.choices):
        cut = min([full.find(s) for s in "ae" if s in full], default=len(full))
        assert choice.text == full[:cut]
        assert choice.finish_reason == ("stop" if cut < len(full) else whole.finish_reason)
    assert any(choice.text != full for full, choice in zip(plain, stopped.choices))
    streamed = [""] * 40
    for chunk in client(server).completions.create(model="names", n=40, seed=9, stop=["a", "e"], stream=True,
                                                    prompt=""):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert streamed == [c.text for c in stopped.choices]


@pytest.mark.parametrize("body", [
    dict(model="names", n=6, seed=1, min_length=6, suffix="a"),
    dict(model="names-large", n=5, seed=2, temperature=1.0, pattern="k[aeiou]+.*"),
    dict(model="names", n=20, seed=3, novel=True),  # set controls: drawn whole by Generator.generate
    dict(model="names", n=12, seed=4, unique=True, exclude=["emma", "ava"], temperature=0.3),
])
def test_the_runtimes_sampling_controls_are_extra_fields(server, models, body):
    completion = client(server).completions.create(prompt="", **{"model": body["model"], "n": body["n"]},
                                                   extra_body={k: v for k, v in body.items() if k not in ("model", "n")})
    texts = [c.text for c in completion.choices]
    assert texts == alone(models, body)
    streamed = streamed_texts(server, {**body, "stream": True})
    assert streamed == texts


@pytest.mark.parametrize("field, value, words", [
    ("pattern", "[a-", "pattern"), ("suffix", "Z", "cannot produce"), ("min_length", 99, "min_length"),
    ("exclude", "emma", "must be array"), ("labels", ["x"], "no labels"),
])
def test_bad_controls_are_422(server, field, value, words):
    status, answer = server.post("/v1/completions", {"model": "names", field: value, **(
        {"novel": True} if field == "exclude" else {})})
    assert status == 422 and words in answer["error"]["message"], answer


@pytest.mark.parametrize("body", [
    {"model": "names", "n": 3, "seed": 5, "temperature": 0.8},
    {"model": "names-large", "n": 2, "seed": 9, "prompt": "ma", "top_k": 4, "max_tokens": 4, "suffix": "a"},
    {"model": "names", "n": 2, "seed": 1, "novel": True, "unique": True, "stream": True},
])
def test_trace_gives_each_choice_its_steps_as_the_runtime_traces_them(server, models, body):
    if body.get("stream"):
        texts, traces = [""] * body["n"], [None] * body["n"]
        status, _, data = server.request("POST", "/v1/completions", {**body, "trace": True})
        assert status == 200
        for event in [line[6:] for line in data.decode().split("\n") if line.startswith("data: ")][:-1]:
            for choice in json.loads(event)["choices"]:
                texts[choice["index"]] += choice["text"]
                traces[choice["index"]] = choice.get("trace") or traces[choice["index"]]
    else:
        status, answer = server.post("/v1/completions", {**body, "trace": True})
        assert status == 200, answer
        texts, traces = [c["text"] for c in answer["choices"]], [c["trace"] for c in answer["choices"]]
    assert texts == alone(models, body)
    gen, prompt = models[body["model"]], body.get("prompt", "")
    options = {k: body[k] for k in ("temperature", "top_k", "seed", "suffix", "novel", "unique") if k in body}
    max_length = None if "max_tokens" not in body else len(prompt) + body["max_tokens"]
    for i, trace in enumerate(traces):
        assert trace == gen.trace(index=i, prefix=prompt, max_length=max_length, **options)
        assert trace["text"] == prompt + texts[i]
    assert server.post("/v1/completions", {"model": "names", "n": 2, "seed": 5, "temperature": 0.8}
                       )[1]["choices"][0].get("trace") is None  # only when asked


def test_trace_of_more_choices_than_the_cap_is_422(server):
    status, answer = server.post("/v1/completions", {"model": "names", "n": 101, "trace": True})
    assert status == 422 and answer["error"]["param"] == "n" and "at most 100" in answer["error"]["message"]


def test_a_set_control_that_cannot_be_met_is_422(server):
    status, answer = server.post("/v1/completions", {"model": "names", "n": 5, "temperature": 0, "unique": True,
                                                     "max_attempts": 20})
    assert status == 422 and answer["error"]["param"] == "max_attempts", answer


def test_models_lists_each_model_with_its_metadata(server, models):
    listed = client(server).models.list()
    assert [m.id for m in listed.data] == ["names", "names-large"]
    card = json.loads(server.get("/v1/models/names-large")[1])
    assert card["metadata"]["block_size"] == models["names-large"].block_size
    assert card["metadata"]["vocab"] == "".join(models["names-large"].vocab.chars)
    assert server.get("/v1/models/nope")[0] == 404


def test_score_is_the_runtimes_score(server, models):
    texts = ["emma", "olivia", "zzzzqx"]
    status, body = server.post("/v1/score", {"model": "names", "texts": texts})
    assert status == 200
    assert body["nll"] == pytest.approx(models["names"].score(texts), rel=1e-12)
    assert body["tokens"] == 5 + 7 + 7 and body["texts"] == 3


def test_health_metrics_and_openapi(server):
    status, body = server.get("/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    client(server).completions.create(model="names", n=3, seed=1, prompt="")
    metrics = server.get("/metrics")[1].decode()
    for name in ("mgpt_requests_total{", "mgpt_request_seconds_bucket{", "mgpt_queue_depth", "mgpt_batch_rows_bucket",
                 'mgpt_tokens_total{kind="completion"}'):
        assert name in metrics, name
    assert 'mgpt_requests_total{endpoint="/v1/completions",status="200"}' in metrics
    document = json.loads(server.get("/openapi.json")[1])
    assert document["openapi"].startswith("3.")
    fields = document["paths"]["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "prompt", "n", "max_tokens", "temperature", "top_p", "seed", "stream", "stop", "echo",
            "top_k"} <= set(fields["properties"])


# ----------------------------------------------------------------------------- concurrency

def random_request(rng: random.Random) -> dict:
    body = {"model": rng.choice(["names", "names-large"]), "n": rng.choice([1, 1, 2, 5, 20]),
            "seed": rng.randrange(2**63), "temperature": rng.choice([0, 0.5, 1.0, 1.7])}
    if rng.random() < 0.4:
        body["prompt"] = rng.choice(["a", "ma", "jo", "kri", "l"])
    if rng.random() < 0.3:
        body["top_k"] = rng.randint(1, 10)
    if rng.random() < 0.3:
        body["top_p"] = rng.choice([0.5, 0.9, 1.0])
    if rng.random() < 0.3:
        body["max_tokens"] = rng.randint(1, 6)
    if rng.random() < 0.3:
        body["stream"] = True
    if rng.random() < 0.25:  # the runtime's shape controls mask rows inside the shared batches
        control = rng.choice(["min_length", "suffix", "contains", "pattern"])
        body[control] = rng.choice({"min_length": [3, 5], "suffix": ["a", "n"], "contains": ["e", "ri"],
                                    "pattern": ["[a-k]+", "(ma|jo).*"]}[control])
        if control == "pattern" and body.get("prompt"):
            body["pattern"] = body["prompt"] + "[a-p]*"
    return body


def streamed_texts(server, body) -> list[str]:
    """The choices' texts of a streamed request, read as server-sent events from a raw socket."""
    status, _, data = server.request("POST", "/v1/completions", body)
    assert status == 200, data
    events = [line[6:] for line in data.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    texts = [""] * (body["n"] * (len(body["prompt"]) if isinstance(body.get("prompt"), list) else 1))
    for event in events[:-1]:
        for choice in json.loads(event)["choices"]:
            texts[choice["index"]] += choice["text"]
    return texts


def test_hundreds_of_concurrent_mixed_requests_each_get_what_they_get_alone(server, models):
    rng, bodies, expected = random.Random(16), [], []
    while len(bodies) < 300:
        body = random_request(rng)
        try:
            expected.append(alone(models, body))
        except ValueError:  # controls no sample can meet (a long min_length under a small max_tokens)
            continue
        bodies.append(body)

    def ask(body):
        if body.get("stream"):
            return streamed_texts(server, body)
        status, answer = server.post("/v1/completions", body)
        assert status == 200, answer
        return [c["text"] for c in answer["choices"]]

    with ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(ask, bodies))
    for body, texts, alone_texts in zip(bodies, answers, expected):
        assert texts == alone_texts, body
    assert sum(any(k in body for k in ("min_length", "suffix", "contains", "pattern")) for body in bodies) > 40
    rows = [line for line in server.get("/metrics")[1].decode().splitlines() if line.startswith("mgpt_batch_rows_sum")]
    assert float(rows[0].split()[-1]) > 300  # rows were stepped in batches


# ----------------------------------------------------------------------------- faults

def raw(server, data: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("body, status, param, words", [
    (b"{not json", 400, None, "not valid JSON"),
    (b"[1, 2]", 400, None, "must be a JSON object"),
    (b'{"model": "names", "temperature": NaN}', 400, None, "not standard JSON"),
    (b"\xff\xfe", 400, None, "not valid JSON"),
    (b'{"model": "names", "n": "3"}', 422, "n", "must be integer"),
    (b'{"model": "names", "n": 0}', 422, "n", ">= 1"),
    (b'{"model": "names", "n": 100000}', 422, "n", "<= 256"),
    (b'{"model": "names", "n": true}', 422, "n", "must be integer"),
    (b'{"model": "names", "temperature": -1}', 422, "temperature", ">= 0"),
    (b'{"model": "names", "temperature": 1e999}', 422, "temperature", "must be number"),
    (b'{"model": "names", "top_p": 0}', 422, "top_p", "> 0"),
    (b'{"model": "names", "top_k": 0}', 422, "top_k", ">= 1"),
    (b'{"model": "names", "seed": 1.5}', 422, "seed", "must be integer"),
    (b'{"model": "names", "seed": 99999999999999999999999}', 422, "seed", "<="),
    (b'{"model": "names", "prompt": 5}', 422, "prompt", "string"),
    (b'{"model": "names", "prompt": "ABC"}', 422, "prompt", "the model knows"),
    (b'{"model": "names", "prompt": "abcdefghijklmnopqrstuvwxyz"}', 422, "prompt", "shorter than"),
    (b'{"model": "names", "stop": [1]}', 422, "stop", "string"),
    (b'{"model": "names", "logprobs": 3}', 422, "logprobs", "null"),
    (b'{"model": "names", "presence_penalty": 0.5}', 422, "presence_penalty", "one of"),
    (b'{"model": "names", "file": "/etc/passwd"}', 422, "file", "unknown field"),
    (b'{"prompt": "a"}', 422, "model", "required"),
    (b'{"model": "/etc/passwd"}', 404, "model", "no model"),
    (b'{"model": "../models/names.onnx"}', 404, "model", "no model"),
    (b'{"model": 3}', 422, "model", "must be string"),
])
def test_bad_requests_get_openais_error_shape_and_a_status_that_names_the_mistake(server, body, status, param, words):
    got, answer = server.post("/v1/completions", body)
    assert got == status, answer
    error = answer["error"]
    assert words in error["message"] and error["param"] == param
    assert error["type"] == ("invalid_request_error" if status in (400, 422) else "not_found_error")


def test_bodies_over_the_cap_are_413_told_or_counted(server):
    status, answer = server.post("/v1/completions", b"x" * (2 << 20))
    assert status == 413 and "limit" in answer["error"]["message"]
    chunked = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (65536, b"y" * 65536) for _ in range(20)) + b"0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(chunked)
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")


def test_unknown_paths_and_methods(server):
    assert server.get("/v1/chat/completions")[0] == 404
    status, headers, _ = server.request("GET", "/v1/completions")
    assert status == 405 and headers["allow"] == "POST"
    assert server.post("/v1/score", {"model": "names", "texts": ["Émile"]})[0] == 422


def test_the_key_is_required_and_compared(keyed):
    assert keyed.get("/health")[0] == 200  # open, like the schema
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}, {"authorization": f"Basic {KEY}"}):
        status, answer = keyed.post("/v1/completions", {"model": "names"}, headers)
        assert status == 401 and answer["error"]["type"] == "authentication_error", headers
        assert keyed.get("/metrics", headers)[0] == 401
    with pytest.raises(openai.AuthenticationError):
        client(keyed, "wrong").completions.create(model="names", prompt="")
    assert client(keyed, KEY).completions.create(model="names", prompt="", seed=1).choices


def test_cors_is_off_unless_origins_are_given(server):
    headers = {"origin": "http://app.example"}
    status, answer_headers, _ = server.request("POST", "/v1/completions", {"model": "names"}, headers)
    assert status == 200 and "access-control-allow-origin" not in {k.lower() for k in answer_headers}
    cors = Server("--cors-origin", "http://app.example")
    try:
        preflight = cors.request("OPTIONS", "/v1/completions", headers={
            **headers, "access-control-request-method": "POST", "access-control-request-headers": "content-type"})
        assert preflight[0] == 204 and preflight[1]["access-control-allow-origin"] == "http://app.example"
        assert "POST" in preflight[1]["access-control-allow-methods"]
        status, answer_headers, _ = cors.request("POST", "/v1/completions", {"model": "names"}, headers)
        assert status == 200 and answer_headers["access-control-allow-origin"] == "http://app.example"
        status, answer_headers, _ = cors.request("POST", "/v1/completions", {"model": "names"},
                                                 {"origin": "http://other.example"})
        assert status == 200 and "access-control-allow-origin" not in {k.lower() for k in answer_headers}
        assert cors.request("OPTIONS", "/v1/completions", headers={"origin": "http://other.example"})[0] == 405
    finally:
        assert cors.stop() == 0


def test_a_client_that_goes_away_has_its_rows_dropped(server):
    # samples long enough (the larger model, temperature 2) to outlast a burst of ticks (engine.BURST)
    for stream in (False, True):
        body = json.dumps({"model": "names-large", "n": 256, "stream": stream, "seed": 1, "temperature": 2.0}).encode()
        for _ in range(5):
            raw(server, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body), read=False)
    deadline = time.monotonic() + 30
    while json.loads(server.get("/health")[1])["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(server.get("/health")[1])["in_flight"] == 0
    metrics = server.get("/metrics")[1].decode()
    gone = [line for line in metrics.splitlines() if line.startswith('mgpt_requests_total{endpoint="/v1/completions",status="499"}')]
    assert gone and float(gone[0].split()[-1]) >= 1  # noticed before the samples ended: rows dropped
    assert client(server).completions.create(model="names", n=2, seed=1, prompt="").choices


def test_a_slow_reader_does_not_stall_other_requests(server, models):
    # a stream of 256 choices whose client reads nothing: its events wait, the others go on
    body = json.dumps({"model": "names-large", "n": 256, "stream": True, "temperature": 2.0, "seed": 1}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        for seed in range(20):
            request = {"model": "names", "n": 3, "seed": seed}
            status, answer = server.post("/v1/completions", request, timeout=30)
            assert status == 200 and [c["text"] for c in answer["choices"]] == alone(models, request)
    finally:
        sock.close()


def test_a_full_queue_is_429_with_retry_after():
    server = Server("--queue", "2")
    try:
        body = {"model": "names", "n": 256, "temperature": 2.0}

        def ask(_):
            status, headers, data = server.request("POST", "/v1/completions", body)
            return status, headers.get("retry-after"), json.loads(data)

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(ask, range(200)))
        statuses = {status for status, _, _ in answers}
        assert statuses <= {200, 429} and 200 in statuses
        refused = [(retry, answer) for status, retry, answer in answers if status == 429]
        assert refused, "32 clients never found the 2 places taken"
        assert all(retry == "1" and answer["error"]["type"] == "rate_limit_error" for retry, answer in refused)
        with pytest.raises(openai.RateLimitError):  # OpenAI's client sees 429 as what it is
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda _: client(server).completions.create(**body, prompt=""), range(64)))
    finally:
        assert server.stop() == 0


def test_a_request_over_the_time_limit_is_504():
    server = Server("--timeout", "0.000001")
    try:
        status, answer = server.post("/v1/completions", {"model": "names", "n": 256, "temperature": 2.0})
        assert status == 504 and "limit" in answer["error"]["message"]
        assert json.loads(server.get("/health")[1])["in_flight"] == 0
    finally:
        assert server.stop() == 0


def test_sigterm_finishes_what_is_in_flight_and_exits_0(models):
    server = Server("--drain-timeout", "30")
    body = {"model": "names", "n": 256, "seed": 3, "temperature": 1.0}
    expected = alone(models, body)
    results, started = [], threading.Barrier(9)

    def ask():
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.connect()
        started.wait()
        try:
            for _ in range(50):
                connection.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
                response = connection.getresponse()
                results.append((response.status, response.read()))
        except (ConnectionError, http.client.HTTPException, OSError):
            pass  # the server closed the connection between two requests: refused, never cut

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.2)
    assert server.stop(60) == 0
    for thread in threads:
        thread.join()
    assert results, "no request was answered"
    for status, data in results:  # every answer that came is whole
        assert status == 200 and [c["text"] for c in json.loads(data)["choices"]] == expected
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


# ----------------------------------------------------------------------------- the schema, property-based

def test_schemathesis_finds_no_server_error_and_answers_as_documented(server):
    # its pytest plugin does not run under pytest 9, so its strategies run under hypothesis here
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{server.port}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:
        @hypothesis.given(operation.as_strategy())
        @hypothesis.settings(max_examples=30, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def check(case):
            case.call_and_validate(timeout=60)

        check()


# ----------------------------------------------------------------------------- the hot path's shortcuts

VALUES = [None, True, False, 0, 1, -1, 2, 3.0, 0.5, -0.5, 1.5, 256, 257, 10**30, -(2**63) - 1, 2**64, 1e300, "",
          "a", "x" * 64, "x" * 65, "x" * 300, "x" * 1001, [], ["a"], [1], {}, {"include_usage": True}]


def test_the_quick_field_tests_pass_only_what_the_schema_allows():
    from mgpt.serve import schema

    forms = [schema.Form.of(schema.completion_fields(256, 16, 16), ("model",)),
             schema.Form.of(schema.score_fields(1024, 4096), ("model", "texts"))]
    passed = 0
    for form in forms:
        for name, field in form.fields.items():
            for value in VALUES:
                if form.quick[name](value):
                    passed += 1
                    assert schema._problem(field.schema, value) is None, (name, value)
    assert passed > 40  # the common values do take the quick path


@hypothesis.given(texts=hypothesis.strategies.lists(hypothesis.strategies.text(), min_size=1, max_size=4),
                  model=hypothesis.strategies.text(min_size=1), echo=hypothesis.strategies.booleans(),
                  stops=hypothesis.strategies.lists(hypothesis.strategies.text(min_size=1, max_size=3), max_size=2))
@hypothesis.settings(max_examples=200, deadline=None)
def test_the_written_out_answer_is_the_json_of_its_fields(texts, model, echo, stops):
    from mgpt.serve import completions

    class Part:  # what body() reads of a part: its plan's prefix, the texts and why each ended
        def __init__(self, prefix, texts):
            self.plan, self.texts_ = type("Plan", (), {"prefix": prefix, "context": (0,) * (len(prefix) + 1)}), texts
            self.reasons, self.tokens = ["stop", "length"] * len(texts), sum(map(len, texts))
            self.traces = None

    request = type("Request", (), {"parts": [Part("p\"\\é", texts), Part("", texts[::-1])]})
    answer = {"id": "cmpl-1", "created": 7, "model": model, "seed": 2**64 - 1, "n": len(texts), "echo": echo,
              "stops": stops}
    written = json.loads(completions.body(request, answer))
    choices = []
    for i, part in enumerate(request.parts):
        for slot, (text, reason) in enumerate(zip(part.texts_, part.reasons)):
            text, stopped = completions.cut(text, stops)
            choices.append({"text": (part.plan.prefix if echo else "") + text, "index": i * len(texts) + slot,
                            "logprobs": None, "finish_reason": "stop" if stopped else reason})
    assert written == {"id": "cmpl-1", "object": "text_completion", "created": 7, "model": model, "choices": choices,
                       "usage": completions.usage(request), "seed": 2**64 - 1}


def in_process(generator, bodies: list[dict], during=None, gone: bool = False, **limits):
    """``bodies`` posted at once to /v1/completions of an App serving ``generator`` as "names" (with
    ``limits``), in-process through ASGI: (each answer's messages as sent, the app, ``during()``'s
    results when the app has started and once every answer is in). Clients stay until answered,
    or with ``gone`` leave once their body is sent."""
    import asyncio

    from mgpt.serve.app import App, Limits, Settings

    async def main():
        app = App(Settings({"names": generator}, limits=Limits(**limits)))
        startup = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        lifespan = asyncio.ensure_future(app({"type": "lifespan"}, startup.get, lambda message: asyncio.sleep(0)))
        await asyncio.sleep(0.01)

        async def post(body):
            sent, received = [], [False]

            async def receive():
                if not received[0]:
                    received[0] = True
                    return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
                if gone:
                    return {"type": "http.disconnect"}
                await asyncio.Event().wait()  # the client stays

            async def send(message):
                sent.append(message)

            await app({"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}, receive, send)
            return sent

        before = during() if during else None
        answers = await asyncio.wait_for(asyncio.gather(*(post(body) for body in bodies)), 60)  # fail, never hang
        after = during() if during else None
        lifespan.cancel()
        return answers, app, (before, after)

    return asyncio.run(main())


def test_batches_cut_at_their_row_cap_draw_what_each_request_draws_alone(monkeypatch, models):
    """In-process, through the ASGI app: with batches of at most 8 rows, concurrent requests of up
    to 12 samples step as several batches at one position, and each still gets its samples."""
    from mgpt.serve import engine

    monkeypatch.setattr(engine, "MAX_ROWS", 8)
    rng = random.Random(4)
    bodies = [{"model": "names", "n": rng.randint(1, 12), "seed": rng.randrange(2**32),
               "temperature": rng.choice([0.5, 1.0])} for _ in range(40)]
    steps = []
    step = engine.Batch.step
    monkeypatch.setattr(engine.Batch, "step", lambda self: (steps.append(len(self)), step(self))[1])
    sent, _, _ = in_process(models["names"], bodies)
    assert all(messages[0]["status"] == 200 for messages in sent)
    answers = [[choice["text"] for choice in json.loads(messages[1]["body"])["choices"]] for messages in sent]
    assert all(answer == alone(models, body) for answer, body in zip(answers, bodies))
    assert max(steps) <= 12 and steps.count(8) > 3  # batches were cut at the cap (one part may exceed it)


def test_finished_requests_leave_no_garbage_cycles(models):
    """A request's parts point back at it: the handler breaks that cycle when it is done, so a
    busy server's requests are freed by reference counting, not by the garbage collector (whose
    scans of them were ~7% of a one-sample request's CPU). With the collector off, requests of
    every path (batched, several prompts, streamed, lone, refused, set controls, traced) leave
    nothing for it to find."""
    import gc

    bodies = [{"model": "names"}, {"model": "names", "n": 3, "prompt": ["a", "b"], "seed": 1},
              {"model": "names", "n": 2, "stream": True}, {"model": "names", "top_k": 0},
              {"model": "names", "n": 2, "novel": True}, {"model": "names", "trace": True},
              *({"model": "names", "temperature": 0.8} for _ in range(30))]
    gc.collect()
    gc.disable()
    try:
        sent, _, (_, found) = in_process(models["names"], bodies, during=gc.collect)
    finally:
        gc.enable()
    assert [messages[0]["status"] for messages in sent[:6]] == [200, 200, 200, 422, 200, 200]
    assert found == 0


@pytest.mark.parametrize("gone", [True, False])
def test_small_requests_still_going_are_listened_to_and_timed(monkeypatch, models, gone):
    """A small request is not listened to at first (Request.guard): once still going WATCH_AFTER
    seconds later, the sweep listens, so a client that left has its request dropped (499, nothing
    sent) and one that stays gets 504 at the time limit. Here no tick ever runs, so the requests
    stay in flight."""
    from mgpt.serve import engine

    monkeypatch.setattr(engine, "WATCH_AFTER", 0.02)
    monkeypatch.setattr(engine, "SWEEP", 0.01)
    monkeypatch.setattr(engine.Engine, "tick", lambda self, starting, dropped: None)
    bodies = [{"model": "names", "n": 2, "seed": seed} for seed in range(5)]
    started = time.monotonic()
    sent, app, _ = in_process(models["names"], bodies, gone=gone, timeout=0.2)
    took = time.monotonic() - started
    names = app.engines["names"]
    assert names.in_flight == 0 and not names.young and names.sweeper is None
    if gone:
        assert sent == [[]] * 5 and app.metrics.requests["/v1/completions", 499] == 5 and took < 0.2
    else:
        assert [messages[0]["status"] for messages in sent] == [504] * 5 and took >= 0.2


@pytest.mark.parametrize("burst", [0.0, 10.0])
def test_ticks_run_back_to_back_for_a_burst_then_the_loop_turns(monkeypatch, models, burst):
    """The engine runs its ticks one after another for up to BURST seconds (the graph's and the
    draw's code and data stay in the processor's cache), then gives the loop a turn: with BURST 0
    the loop turns between every two ticks; with a long one, the ticks of a cohort in flight run
    with no turn between them. Either way every request gets its samples."""
    import asyncio

    from mgpt.serve import engine

    monkeypatch.setattr(engine, "BURST", burst)
    turns, ticks = [0], []  # loop turns so far; (turns, batches in flight) at each tick
    tick = engine.Engine.tick
    monkeypatch.setattr(engine.Engine, "tick", lambda self, starting, dropped: (
        ticks.append((turns[0], bool(self.batches))), tick(self, starting, dropped))[1])
    probe = []

    async def count():
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    def during():  # starts the counter of loop turns, then stops it
        if probe:
            probe[0].cancel()
        else:
            probe.append(asyncio.ensure_future(count()))

    bodies = [{"model": "names", "n": 8, "seed": seed} for seed in range(20)]
    sent, _, _ = in_process(models["names"], bodies, during=during)
    answers = [[choice["text"] for choice in json.loads(messages[1]["body"])["choices"]] for messages in sent]
    assert answers == [alone(models, body) for body in bodies]
    between = [b[0] - a[0] for a, b in zip(ticks, ticks[1:]) if b[1]]  # turns between a tick and the next in flight
    assert len(between) >= 5
    assert all(turns == 0 for turns in between) if burst else all(turns >= 1 for turns in between)
