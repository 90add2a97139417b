"""The references bench_serve.py measures mgpt-serve against, on the same stack (uvicorn with
httptools and uvloop, one process, a plain ASGI app):

- ``trivial``: reads the JSON body and answers a small JSON object: the stack's own ceiling;
- ``naive``: answers a completion request (model, n, seed, temperature) by calling
  ``Generator.generate`` in the handler, one request at a time, in OpenAI's answer shape.

    python benchmarks/serve_apps.py trivial|naive PORT
"""

from __future__ import annotations

import json
import sys

import uvicorn

from mgpt.runtime import Generator, sampling

_generator = None


async def _body(receive) -> dict:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return json.loads(b"".join(chunks))


async def _answer(send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def trivial(scope, receive, send):
    if scope["type"] != "http":
        return
    request = await _body(receive)
    await _answer(send, json.dumps({"ok": True, "model": request.get("model")}).encode())


async def naive(scope, receive, send):
    if scope["type"] != "http":
        return
    request = await _body(receive)
    seed = request.get("seed")
    seed = sampling.new_seed() if seed is None else seed
    texts = _generator.generate(request.get("n", 1), temperature=request.get("temperature", 0.5), seed=seed)
    choices = [{"text": t, "index": i, "logprobs": None, "finish_reason": "stop"} for i, t in enumerate(texts)]
    await _answer(send, json.dumps({"object": "text_completion", "model": request.get("model"),
                                    "choices": choices, "seed": seed}).encode())


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "naive":
        _generator = Generator("names", threads=1)
    uvicorn.run({"trivial": trivial, "naive": naive}[kind], host="127.0.0.1", port=port, log_level="warning",
                access_log=False, proxy_headers=False, loop="uvloop", http="httptools")  # as mgpt-serve runs it
