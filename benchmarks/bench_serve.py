"""mgpt-serve under load, beside the same stack's references in the same run (benchmarks/serve_apps.py):
the trivial endpoint (the stack's ceiling) and a naive server that calls Generator.generate in each
request's handler. Load from wrk (Debian's package) on the same machine; its CPU use is reported.

    flock /work/helpers/bench.lock python benchmarks/bench_serve.py [--seconds 5] [--rounds 3] [--soak 600]

Prints Markdown tables: requests of n=1 at 1..256 connections (requests/s, p99, the server's and
wrk's CPU seconds per second, and requests per second of the server's CPU against naive's),
requests of n=20 (names/s), two mgpt-serve processes sharing
the port (--reuse-port), and with --soak a run of mixed requests against a small queue: statuses
(only 200 and the intended 429s are allowed) and the server's memory over time. Each run is one
wrk run of --seconds after a one-second warm-up. For the first two tables the three servers run at
once and take turns at each load, --rounds times: a figure is a server's run of median requests/s,
a ratio the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A server process on ``port``, ready when it accepts connections."""

    def __init__(self, command: list[str], port: int):
        self.port = port
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{command} exited with {self.process.returncode}")
                time.sleep(0.1)
        raise RuntimeError(f"{command} did not start")

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


def mgpt_serve(port: int, *extra: str) -> Process:
    return Process([sys.executable, "-m", "mgpt.serve.cli", "--port", str(port), "--log-level", "warning", *extra], port)


def reference(kind: str, port: int) -> Process:
    return Process([sys.executable, str(HERE / "serve_apps.py"), kind, str(port)], port)


def lua_post(bodies: list[dict], path: str = "/v1/completions") -> str:
    """A wrk script that POSTs ``bodies`` in turn and counts the answers' statuses."""
    quoted = ", ".join("[[" + json.dumps(b) + "]]" for b in bodies)
    return f"""
bodies = {{{quoted}}}
counter = 0
ok, refused, other = 0, 0, 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, bodies[(counter % #bodies) + 1])
end
response = function(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 429 then refused = refused + 1 else other = other + 1 end
end
threads = {{}}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("ok"); b = b + t:get("refused"); c = c + t:get("other") end
  io.write(string.format("STATUSES %d %d %d\\n", a, b, c))
end
"""


def wrk(port: int, script: str, connections: int, seconds: float, servers: list[Process]) -> dict:
    """One wrk run: requests/s, p50 and p99 (ms), statuses, wrk's CPU seconds and the servers'."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        url = f"http://127.0.0.1:{port}/"
        warm = subprocess.run(["wrk", "-t1", f"-c{connections}", "-d1s", "-s", f.name, url], capture_output=True)
        assert warm.returncode == 0, warm.stderr
        before = sum(s.cpu() for s in servers)
        process = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", f.name, url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = sum(s.cpu() for s in servers) - before
    finally:
        os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    ok, refused, other = map(int, re.search(r"STATUSES (\d+) (\d+) (\d+)", out).groups())
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": _ms(out, "50%"), "p99": _ms(out, "99%"), "ok": ok, "refused": refused,
            "other": other, "socket_errors": errors.group(1) if errors else "",
            "wrk_cpu": (usage.ru_utime + usage.ru_stime) / max(1, round(seconds)),
            "server_cpu": server_cpu / max(1, round(seconds))}


def _ms(out: str, quantile: str) -> float:
    found = re.search(rf"{quantile}\s+([\d.]+)(us|ms|s)\b", out)
    value, unit = float(found.group(1)), found.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def load_tables(args) -> None:
    """The three servers run at once, each idle while another is measured, and take turns at each
    load, round after round: a ratio compares runs seconds apart rather than minutes (this shared
    machine's speed drifts by tens of percent within an hour). Each server's figures are its run
    of median requests/s; each ratio is the median of the rounds' ratios."""
    one = lua_post([{"model": "names", "n": 1}])
    twenty = lua_post([{"model": "names", "n": 20}])
    servers: dict[str, Process] = {}
    runs: dict[tuple, list[dict]] = {}  # (kind, n, connections) -> one result per round
    try:
        for kind in ("trivial", "naive", "mgpt"):
            port = free_port()
            servers[kind] = mgpt_serve(port) if kind == "mgpt" else reference(kind, port)
        for n, script, counts, kinds in ((1, one, args.connections, ("trivial", "naive", "mgpt")),
                                         (20, twenty, args.connections20, ("naive", "mgpt"))):
            for c in counts:
                for _ in range(args.rounds):
                    for kind in kinds:
                        server = servers[kind]
                        runs.setdefault((kind, n, c), []).append(wrk(server.port, script, c, args.seconds, [server]))
    finally:
        for server in servers.values():
            server.stop()

    def median(kind, n, c) -> dict:
        return sorted(runs[kind, n, c], key=lambda r: r["rps"])[(args.rounds - 1) // 2]

    def ratio(a, b, n, c, of=lambda r: r["rps"]) -> float:
        return statistics.median(of(x) / of(y) for x, y in zip(runs[a, n, c], runs[b, n, c]))

    print(f"\n### Requests of n=1 (requests/s; p99 ms; CPU s per s: server / wrk; medians of {args.rounds} rounds)\n")
    print(row("connections", "trivial", "naive", "mgpt-serve", "mgpt / naive", "mgpt / trivial",
              "p99 naive", "p99 mgpt", "CPU naive", "CPU mgpt", "per CPU-s: mgpt / naive", "errors"))
    print(row(*["---"] * 12))
    for c in args.connections:
        t, n, m = median("trivial", 1, c), median("naive", 1, c), median("mgpt", 1, c)
        errors = sum(r["other"] for kind in ("trivial", "naive", "mgpt") for r in runs[kind, 1, c])
        print(row(c, f"{t['rps']:,.0f}", f"{n['rps']:,.0f}", f"{m['rps']:,.0f}", f"{ratio('mgpt', 'naive', 1, c):.2f}x",
                  f"{ratio('mgpt', 'trivial', 1, c):.0%}", f"{n['p99']:.1f}", f"{m['p99']:.1f}",
                  f"{n['server_cpu']:.2f} / {n['wrk_cpu']:.2f}", f"{m['server_cpu']:.2f} / {m['wrk_cpu']:.2f}",
                  f"{ratio('mgpt', 'naive', 1, c, per_cpu):.2f}x", errors))
    if args.rounds > 1:
        print(f"\nmgpt / naive in each round: " + "; ".join(
            f"{c} connections " + ", ".join(f"{x['rps'] / y['rps']:.2f}x" for x, y in zip(runs["mgpt", 1, c], runs["naive", 1, c]))
            for c in args.connections))
    print(f"\n### Requests of n=20 (names/s = 20 x requests/s; p99 ms; medians of {args.rounds} rounds)\n")
    print(row("connections", "naive", "mgpt-serve", "mgpt / naive", "p99 naive", "p99 mgpt",
              "per CPU-s: mgpt / naive", "errors"))
    print(row(*["---"] * 8))
    for c in args.connections20:
        n, m = median("naive", 20, c), median("mgpt", 20, c)
        errors = sum(r["other"] for kind in ("naive", "mgpt") for r in runs[kind, 20, c])
        print(row(c, f"{20 * n['rps']:,.0f}", f"{20 * m['rps']:,.0f}", f"{ratio('mgpt', 'naive', 20, c):.2f}x",
                  f"{n['p99']:.1f}", f"{m['p99']:.1f}", f"{ratio('mgpt', 'naive', 20, c, per_cpu):.2f}x", errors))


def per_cpu(result: dict) -> float:
    """Requests answered per second of the server's CPU: a figure less swayed than requests/s by
    what else runs on the machine."""
    return result["rps"] / max(result["server_cpu"], 1e-9)


def two_processes(args) -> None:
    one = lua_post([{"model": "names", "n": 1}])
    twenty = lua_post([{"model": "names", "n": 20}])
    port = free_port()
    print("\n### One mgpt-serve process against two on the same port (--reuse-port)\n")
    print(row("load", "one process", "two processes", "two / one", "p99 one", "p99 two", "CPU s per s (two)"))
    print(row(*["---"] * 7))
    for name, script, c in (("n=1, 64 connections", one, 64), ("n=1, 256 connections", one, 256),
                            ("n=20, 64 connections", twenty, 64)):
        figures = []
        for count in (1, 2):
            servers = [mgpt_serve(port, "--reuse-port") for _ in range(count)]
            try:
                figures.append(wrk(port, script, c, args.seconds, servers))
            finally:
                for s in servers:
                    s.stop()
        a, b = figures
        scale = 20 if "n=20" in name else 1
        print(row(name, f"{scale * a['rps']:,.0f}", f"{scale * b['rps']:,.0f}", f"{b['rps'] / a['rps']:.2f}x",
                  f"{a['p99']:.1f}", f"{b['p99']:.1f}", f"{b['server_cpu']:.2f} / wrk {b['wrk_cpu']:.2f}"))


def soak(args) -> None:
    bodies = [{"model": "names", "n": 1}, {"model": "names", "n": 20, "temperature": 1.0},
              {"model": "names", "n": 5, "prompt": "ma", "stream": True},
              {"model": "names", "n": 3, "seed": 7, "top_k": 5, "top_p": 0.9, "stop": ["e"]},
              {"model": "names", "n": 4, "min_length": 5, "suffix": "a"},
              {"model": "names", "n": 2, "pattern": "[a-k]+"},
              {"model": "names", "n": 2, "novel": True, "echo": True},
              {"model": "names", "n": 2, "trace": True, "seed": 3},
              {"model": "names", "n": 200, "temperature": 2.0}]
    port = free_port()
    server = mgpt_serve(port, "--queue", "32")  # 64 connections against 32 places: some 429s are intended
    memory, statuses = [], [0, 0, 0]
    try:
        end = time.monotonic() + args.soak
        while time.monotonic() < end:
            r = wrk(port, lua_post(bodies), 64, min(30, max(1, end - time.monotonic())), [server])
            for i, key in enumerate(("ok", "refused", "other")):
                statuses[i] += r[key]
            memory.append(server.rss_mb())
    finally:
        server.stop()
    tenth = max(1, len(memory) // 10)
    first, last = statistics.median(memory[:tenth]), statistics.median(memory[-tenth:])
    print(f"\n### Soak: {args.soak:.0f} s of mixed requests, 64 connections, --queue 32\n")
    print(row("200", "429 (intended)", "other statuses", "RSS first tenth MB", "RSS last tenth MB", "change",
              "RSS samples"))
    print(row(*["---"] * 7))
    print(row(*statuses, f"{first:.1f}", f"{last:.1f}", f"{last / first - 1:+.1%}", len(memory)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk run's length")
    parser.add_argument("--connections", default="1,4,16,64,256", help="n=1 runs' connection counts")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each server at each load, taken in turn")
    parser.add_argument("--connections20", default="16,64,256", help="n=20 runs' connection counts")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of the soak (0: none; the issue's is 600)")
    parser.add_argument("--only", choices=["load", "two", "soak"], default=None, help="run one part only")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    args.connections20 = [int(c) for c in args.connections20.split(",")]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(f"# bench_serve: {os.cpu_count()} CPUs, wrk -t1, {args.seconds:g} s per run; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    if args.only in (None, "load"):
        load_tables(args)
    if args.only in (None, "two"):
        two_processes(args)
    if args.soak and args.only in (None, "soak"):
        soak(args)


if __name__ == "__main__":
    main()
