"""Continuous batching: the samples of every request in flight advance together, one graph step
per position present, each tick.

A request's rows (one ``Choices`` per prompt) join at the next tick in a batch of their own for
their first draw (from the plan's logits: no graph run), then run with every other row at the same
position: batches that reach the same position join (``runtime.batched.Batch``, the Generator's own
step, so a sample is drawn exactly as ``Generator.generate`` draws it alone). A tick steps every
batch once, so it runs the graph once per position in flight (at most the block size); rows leave
as they end, and the rows of a request whose client went away leave at the next tick.

The ticks run on the event loop itself, back to back for up to BURST seconds and then the loop
gets a turn, and what the parts hear during a tick reaches their requests right after it (the
outbox). In a burst the graph's and the draw's code and data stay in the processor's cache: a
graph step in the server took ~100 us against ~55 alone when the loop's request handling ran
between any two (n=1 at 64 connections: 1.12x the requests/s with bursts, 1.25x at 16, the p99
lower too). Running the ticks on a thread of their own (onnxruntime's run releases the GIL) was
no gain here: the thread waits for the lock the loop holds. New requests start together at most
every ``cohort_ticks`` ticks, so fewer positions are in flight: fewer, larger steps.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

import numpy as np

from mgpt.runtime import Generator, ModelError
from mgpt.runtime.batched import Batch, Part
from mgpt.runtime.plan import Plan

PLANS = 256  # request options whose plans an engine keeps
WATCH_AFTER = 0.25  # seconds before a small request's client is listened to (Request.guard)
SWEEP = 0.05  # seconds between the looks at the small requests not yet listened to (Engine.sweep)
WATCH_ROWS = 64  # requests of this many rows or more are listened to at once
MAX_ROWS = 2048  # rows a batch step takes at most (one part may be larger)
LONE_ROWS = 4  # with at most this many rows in flight and new, one-sample requests run alone
GATHER = 0.0002  # seconds without a new request that end the gathering of a busy server's next cohort
GATHER_MAX = 0.001  # seconds a gathering lasts at most
GATHER_PARTS = 8  # a cohort this large or larger makes the next one gather
BURST = 0.002  # seconds of ticks in a row before the loop gets a turn (a cohort of ~54 one-row requests
# runs in one; 5 ms was no faster, 1 ms 2% slower)
INDICES = np.arange(1024)  # sample indices 0..n-1 as a view of this (a new array costs more)
INDICES.setflags(write=False)


class Choices(Part):
    """One prompt's ``n`` samples in a request: sample indices 0..n-1 of its plan, as
    ``mgpt-generate -n N`` draws them. It keeps the samples' texts when all have ended;
    streaming, it also turns each step's tokens into events for its request."""

    def __init__(self, request: Request, plan, n: int, vocab):
        super().__init__(plan, INDICES[:n] if n <= len(INDICES) else np.arange(n), vocab)
        self.request = request
        self.streams = request.stream
        self.tokens = 0  # draws made for the part's samples, each ending BOS included
        self.traces: list[dict] | None = None  # each sample's Generator.trace, when the request asks
        if self.streams:
            self.sofar = [[] for _ in range(n)]  # the characters drawn per sample

    def drew(self, slots, tokens, position):
        bos, chars, last = self.vocab.bos, self.vocab.chars, self.plan.length - 1
        events = []
        for slot, token in zip(slots.tolist(), tokens.tolist()):
            end = token == bos or position == last
            text = "" if token == bos else chars[token]
            self.sofar[slot].append(text)
            events.append((slot, text, None if not end else "stop" if token == bos else "length"))
        self.request.engine.outbox.append((self.request.streamed, (self, events)))

    def finished(self, drawn: list[str]) -> None:
        self.whole(drawn)
        self.request.engine.outbox.append((self.request.part_done, (self,)))

    def whole(self, texts: list[str]) -> None:
        """The samples' texts (what follows the prompt), drawn here or whole by Generator.generate
        (requests with set controls): a sample that reached the plan's last position ended by
        length, the others drew BOS."""
        longest = self.plan.length - self.plan.start  # characters a sample may draw
        self.texts_ = texts
        self.reasons = ["length" if len(text) >= longest else "stop" for text in texts]
        self.tokens = sum(len(text) for text in texts) + self.reasons.count("stop")


class Request:
    """A completion request in flight: its parts (one per prompt), and how it hears of them. The
    handler awaits ``done``; a streaming handler reads ``events`` too."""

    __slots__ = ("engine", "stream", "parts", "rows", "left", "done", "events", "receive", "timer", "watch")

    def __init__(self, engine: Engine, stream: bool):
        self.engine, self.stream = engine, stream
        self.parts: list[Choices] = []
        self.rows = 0  # samples asked for, over all its parts
        self.left = 0
        self.done = engine.loop.create_future()
        self.events: asyncio.Queue | None = asyncio.Queue() if stream else None
        self.timer: asyncio.TimerHandle | None = None
        self.watch: asyncio.Future | None = None

    def add(self, plan, n: int) -> Choices:
        part = Choices(self, plan, n, self.engine.generator.vocab)
        self.parts.append(part)
        self.rows += n
        self.left += 1
        return part

    def guard(self, receive, timeout: float) -> None:
        """Fail the request when its client goes away (``receive`` says http.disconnect) or after
        ``timeout`` seconds. Listening takes a task per request, as costly as the request itself
        at n=1, so a small request (fewer than WATCH_ROWS rows, not streamed) is listened to only
        if it is still going after WATCH_AFTER seconds; its rows are a handful meanwhile. Those
        requests wait in ``Engine.young`` rather than each on a timer of its own (a timer made and
        cancelled per request was ~3% of a one-sample request's CPU)."""
        self.receive, engine = receive, self.engine
        if self.stream or self.rows >= WATCH_ROWS or timeout <= WATCH_AFTER:
            self.listen()
            self.timer = engine.loop.call_later(timeout, self.fail, TimeoutError())
        else:
            engine.young[self] = (engine.loop.time(), timeout)
            if engine.sweeper is None:
                engine.sweeper = engine.loop.call_later(SWEEP, engine.sweep)

    def still_going(self, left: float) -> None:
        """Listen to the client from now on, and fail the request in ``left`` seconds."""
        if not self.done.done():
            self.listen()
            self.timer = self.engine.loop.call_later(left, self.fail, TimeoutError())

    def listen(self) -> None:
        self.watch = asyncio.ensure_future(self.receive())
        self.watch.add_done_callback(self._heard)

    def _heard(self, watch: asyncio.Future) -> None:
        if not watch.cancelled() and watch.exception() is None and watch.result()["type"] == "http.disconnect":
            self.fail(ConnectionResetError("the client went away"))

    def close(self) -> None:
        """The handler is done with the request: stop guarding it and let go of its parts and
        handles. Its parts point back at it, so until then the request and all it holds form a
        cycle that only the garbage collector frees: its scans were ~7% of a one-sample
        request's CPU, and memory freed at once is reused while still in the cache."""
        if self.timer is not None:
            self.timer.cancel()
        if self.watch is not None:
            self.watch.cancel()
        self.engine.young.pop(self, None)
        self.timer = self.watch = self.receive = None
        self.parts = []

    def streamed(self, part: Choices, events: list) -> None:
        self.events.put_nowait((part, events))

    def part_done(self, part: Choices) -> None:
        self.left -= 1
        if not self.left and not self.done.done():
            self.done.set_result(None)
            self.engine.finished(self)

    def fail(self, error: BaseException) -> None:
        """End the request with ``error`` (a client gone, a timeout, a model failure): its rows
        leave the batches at the next tick."""
        if not self.done.done():
            self.done.set_exception(error)
            self.done.exception()  # retrieved: a handler that has gone too must not make asyncio warn
            self.engine.drop(self)
        if self.events is not None:
            self.events.put_nowait(None)


class Engine:
    """The batches of one model, stepped by ``run`` (a task on the server's event loop)."""

    def __init__(self, generator: Generator, metrics=None, cohort_ticks: int = 1):
        self.generator, self.runner, self.metrics = generator, generator._runner, metrics
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fresh: list[Choices] = []  # new parts: their first draws at the next tick
        self.batches: list[Batch] = []  # rows past their first draw; at most one batch per position under MAX_ROWS
        self.dropped: set[Request] = set()  # requests whose rows are to leave at the next tick
        self.in_flight = 0  # requests submitted and not yet finished or failed
        self.wake = asyncio.Event()
        self.cohort_ticks = cohort_ticks  # new requests start together every this many ticks at most
        self.waited = 0  # ticks since new requests last started
        self.cohort = 0  # parts in the last cohort started
        self.arrived, self.quiet_since = 0, 0.0  # new parts at the last gathering turn, and since when
        self.gather_start = 0.0  # when the gathering of the next cohort began
        self.outbox: list[tuple] = []  # (call, args) for the loop to make after a tick
        self.turned = 0.0  # when the engine last came back from a turn of the loop (perf_counter)
        self.plans: dict[tuple, Plan] = {}  # plans with seed 0 by their request options, the newest last
        # small requests not yet listened to (Request.guard): (when guarded, timeout), the oldest first
        self.young: dict[Request, tuple[float, float]] = {}
        self.sweeper: asyncio.TimerHandle | None = None  # the next sweep, while young has requests

    def keep_plan(self, key: tuple, plan: Plan) -> None:
        """Keep ``plan`` for requests with the options ``key``, and the last PLANS of them only."""
        self.plans[key] = plan
        if len(self.plans) > PLANS:
            del self.plans[next(iter(self.plans))]

    def sweep(self) -> None:
        """Listen from now on to the clients of the young requests guarded WATCH_AFTER seconds ago
        or more; look again in SWEEP seconds while any are left."""
        now, young = self.loop.time(), self.young
        while young:
            request = next(iter(young))
            guarded, timeout = young[request]
            if now - guarded < WATCH_AFTER:
                break
            del young[request]
            request.still_going(timeout - (now - guarded))
        self.sweeper = self.loop.call_later(SWEEP, self.sweep) if young else None

    def submit(self, request: Request) -> None:
        """Start ``request``'s parts at the next tick."""
        self.in_flight += 1
        self.fresh += request.parts
        self.wake.set()

    def finished(self, request: Request) -> None:
        self.in_flight -= 1

    def drop(self, request: Request) -> None:
        self.in_flight -= 1
        self.dropped.add(request)

    async def run(self) -> None:
        """Tick while there are rows; sleep until a request comes when there are none. Ticks run
        back to back until BURST seconds have passed since the loop's last turn, then the loop
        turns (reads, new requests, answers, clients gone). What the parts hear during a tick
        reaches their requests after it, on the loop."""
        self.loop = asyncio.get_running_loop()
        while True:
            if not (self.fresh or self.batches):
                self.wake.clear()
                await self.wake.wait()
                self.turned = perf_counter()
            if not self.batches and self.fresh and self.cohort >= GATHER_PARTS and self.gathering():
                await self.turn()  # more of the last cohort's clients come back
                continue
            if self.fresh and len(self.fresh) + sum(map(len, self.batches)) <= LONE_ROWS:
                self.fresh = [part for part in self.fresh if not self.lone(part)]
                if not self.fresh:
                    self.arrived = 0  # a later gathering starts its clock afresh
            starting: dict[int, list[Choices]] = {}  # new parts by context length: a batch for each length
            self.waited += 1
            if self.fresh and (self.waited >= self.cohort_ticks or not self.batches):
                for part in self.fresh:
                    starting.setdefault(part.plan.start, []).append(part)
                self.cohort, self.fresh, self.waited, self.arrived = len(self.fresh), [], 0, 0
            dropped, self.dropped = self.dropped, set()
            self.tick(starting, dropped)
            outbox, self.outbox = self.outbox, []
            for deliver, args in outbox:
                deliver(*args)
            if self.batches and perf_counter() - self.turned < BURST:
                continue  # the next tick at once: the graph's and the draw's code and data still in the cache
            await self.turn()

    async def turn(self) -> None:
        """Give the loop a turn (reads, new requests, answers, clients gone); the next burst of
        ticks starts when it is back."""
        await asyncio.sleep(0)
        self.turned = perf_counter()

    def gathering(self) -> bool:
        """With nothing in flight after a cohort of GATHER_PARTS parts or more (a busy server), True
        while new parts keep coming: until GATHER seconds pass without one, GATHER_MAX at most
        (a steady stream of requests must not hold them all). A cohort's clients
        answered at its last step send their next requests within a few hundred microseconds; a
        cohort started before they arrive leaves them to wait its whole life (at n=1 and 64
        connections: cohorts of ~38 parts and ~27 waiting, instead of one of ~64, so twice the
        graph steps per request)."""
        now = self.loop.time()
        if not self.arrived:
            self.gather_start = now
        if len(self.fresh) != self.arrived:
            self.arrived, self.quiet_since = len(self.fresh), now
        return now - self.quiet_since < GATHER and now - self.gather_start < GATHER_MAX

    def lone(self, part: Choices) -> bool:
        """Draw a one-sample request at once with the Generator's batch-1 loop (IOBinding, ~17 us
        a step against ~55 for a batch step of a few rows) and answer it: True if done. Only when
        at most LONE_ROWS rows are in flight or new, so it delays few (n=1 at 1 connection: 1,400
        requests/s through the batches; at 4 connections the batches ran 0.61x the naive server's
        requests/s). The same sample: the runtime holds its loops to the same tokens."""
        plan = part.plan
        if part.size != 1 or part.streams or plan.constraint is not None or part.request in self.dropped:
            return False
        try:
            text = next(self.generator._stream(plan, range(1), 1))  # the batch-1 loop, as generate(1) runs it
        except ModelError as e:
            part.request.fail(e)
            return True
        part.whole([text[len(plan.prefix):]])
        part.request.part_done(part)
        return True

    def tick(self, starting: dict[int, list[Choices]], dropped: set[Request]) -> None:
        """Every batch steps once, the new parts ``starting`` in batches of their own, without the
        rows of ``dropped``; batches that then share a position join, up to MAX_ROWS rows a batch
        (a step of 5,120 rows cost 10.1 us a sample against 7.1 at 2,200: its cache no longer fits
        the processor's)."""
        batches = [*(Batch.starting(self.runner, chunk) for parts in starting.values() for chunk in _chunks(parts)),
                   *self.batches]
        if dropped:
            for batch in batches:
                batch.drop(lambda part: part.request in dropped)
        stepped: dict[int, Batch] = {}  # the batch at each position that others may still join
        done: list[Batch] = []
        observe = self.metrics.batch_rows.observe if self.metrics else None
        for batch in batches:
            if not len(batch):
                continue
            if observe:
                observe(len(batch))
            try:
                batch.step()
            except ModelError as e:  # a model that fails only at some position: its rows' requests fail
                for part in batch.parts:
                    self.outbox.append((part.request.fail, (e,)))
                continue
            if len(batch):
                other = stepped.get(batch.position)
                if other is not None and len(other) + len(batch) <= MAX_ROWS:
                    other.join(batch)
                else:
                    if other is not None:
                        done.append(other)
                    stepped[batch.position] = batch
        self.batches = [*done, *stepped.values()]


def _chunks(parts: list[Choices]) -> list[list[Choices]]:
    """``parts`` in turn, cut into lists of MAX_ROWS rows or fewer (a larger part alone)."""
    chunks, rows = [[]], 0
    for part in parts:
        if rows + part.size > MAX_ROWS and chunks[-1]:
            chunks.append([])
            rows = 0
        chunks[-1].append(part)
        rows += part.size
    return chunks
