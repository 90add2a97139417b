"""``mgpt-serve``: a thin click command that loads the models and runs the ASGI app under uvicorn."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from pathlib import Path

import click

from mgpt.runtime.command import CONTEXT_SETTINGS, Command, FiniteRange, OptionError


def model_name(given: str, path: Path) -> str:
    """The name a model is served under: a shipped model's name, else its file's stem."""
    import mgpt.models
    from mgpt.runtime.modelfile import shipped_model_path

    for name in mgpt.models.NAMES:
        if path == shipped_model_path(name):
            return name
    return path.stem


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """The server's socket, bound before uvicorn starts (so a taken port is one error line); with
    ``reuse_port``, other processes may bind the same port and the kernel shares the
    connections out (SO_REUSEPORT, Linux and the BSDs)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        if not hasattr(socket, "SO_REUSEPORT"):
            raise OptionError("--reuse-port needs SO_REUSEPORT, which this system does not have")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                                   "choose another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.option("--model", "models", multiple=True,
              help="An mgpt .onnx file, or a shipped model by name (names, names-large, names-era); repeat to serve "
                   "several. Served under the shipped name or the file's stem. [default: names]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; another than loopback needs --api-key (or --no-key-ok).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free one.")
@click.option("--api-key", envvar="MGPT_API_KEY", default=None,
              help="Require this key as 'Authorization: Bearer KEY' on /v1 and /metrics. [env: MGPT_API_KEY]")
@click.option("--no-key-ok", is_flag=True, help="Allow a non-loopback --host without --api-key (prints a warning).")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="A browser origin allowed to call the API (repeatable; * for any). [default: none, CORS off]")
@click.option("--max-n", type=click.IntRange(1), default=256, show_default=True, help="Most choices per prompt.")
@click.option("--max-body", type=click.IntRange(1), default=1 << 20, show_default=True,
              help="Largest request body in bytes (413 beyond).")
@click.option("--queue", type=click.IntRange(1), default=512, show_default=True,
              help="Completion requests in flight at once (429 with Retry-After beyond).")
@click.option("--timeout", type=FiniteRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a completion request may take (504 beyond).")
@click.option("--drain-timeout", type=FiniteRange(min=0), default=10.0, show_default=True,
              help="On SIGTERM, seconds to finish the requests in flight before exiting.")
@click.option("--cohort-ticks", type=click.IntRange(1), default=8, show_default=True,
              help="New requests start together at most every this many steps: larger batches, a little "
                   "more latency.")
@click.option("--reuse-port", is_flag=True,
              help="Let several mgpt-serve processes listen on the same port (SO_REUSEPORT): the kernel "
                   "shares connections among them.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info"]), default="info",
              show_default=True, help="uvicorn's log level (info prints the address and each start and stop).")
@click.version_option(package_name="mgpt", prog_name="mgpt")
def serve_command(models, host, port, api_key, no_key_ok, cors_origins, max_n, max_body, queue, timeout,
                  drain_timeout, cohort_ticks, reuse_port, log_level):
    """Serve mgpt models over HTTP: OpenAI's completions API, continuous batching, the same samples
    for the same seed whatever else runs."""
    try:
        import uvicorn
    except ImportError:
        raise click.ClickException("mgpt-serve needs the serve extra: pip install \"mgpt[serve]\"") from None
    from mgpt.runtime import Generator, ModelError
    from mgpt.runtime.modelfile import model_path

    from .app import App, Limits, Settings

    if api_key is not None and not api_key.strip():
        raise OptionError("--api-key is empty; give a key, or leave the option (and MGPT_API_KEY) out")
    if not is_loopback(host) and api_key is None:
        if not no_key_ok:
            raise OptionError(f"--host {host} is reachable from other machines and there is no --api-key; "
                              "give one (or MGPT_API_KEY), or pass --no-key-ok to serve without a key")
        click.echo(f"Warning: serving on {host} without an API key: anyone who can reach it can use it", err=True)
    loaded = {}
    for given in models or (None,):
        try:
            generator = Generator(given, threads=1)
        except ModelError as e:
            raise click.ClickException(str(e)) from e
        name = model_name(given or "", model_path(given))
        if name in loaded:
            raise OptionError(f"two models would be served as {name!r} (--model {given}); rename one file")
        loaded[name] = generator
    sock = listening_socket(host, port, reuse_port)
    limits = Limits(max_body=max_body, max_n=max_n, queue=queue, timeout=timeout, cohort_ticks=cohort_ticks)
    app = App(Settings(loaded, api_key, list(cors_origins), limits))
    # proxy_headers off: the service reads no client address, and its middleware is a coroutine
    # more per request
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=drain_timeout,
                            lifespan="on", proxy_headers=False, **_fast_parts())
    server = uvicorn.Server(config)
    bound = sock.getsockname()
    click.echo(f"mgpt-serve: {', '.join(loaded)} on http://{bound[0]}:{bound[1]}/ (OpenAPI at /openapi.json)",
               err=True)
    # uvicorn drains on SIGTERM, then raises the signal again for its previous handler: this one,
    # which does nothing, so that a drained server exits 0
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run(sockets=[sock])
    sys.stderr.flush()


def _fast_parts() -> dict:
    """uvloop and httptools when installed (the serve extra has both where they build)."""
    parts = {}
    try:
        import uvloop  # noqa: F401

        parts["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        parts["http"] = "httptools"
    except ImportError:
        pass
    return parts


if __name__ == "__main__":
    serve_command()
