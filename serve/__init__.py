"""mgpt's HTTP service: OpenAI's completions API over mgpt models, with continuous batching.

    mgpt-serve --model names          # then POST /v1/completions, as OpenAI's clients do

``App`` is the ASGI application (``app``), the batching lives in ``engine``, the request fields in
``schema``, the metrics in ``metrics``; ``mgpt-serve`` (``cli``) runs it under uvicorn. Needs the
serve extra: ``pip install "mgpt[serve]"``. ``mgpt.runtime`` never imports this package.
"""
