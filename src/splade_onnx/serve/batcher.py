"""Dynamic batching: texts of concurrent requests merged into one model call, results back to each caller in order.

One dispatcher coroutine feeds one worker thread (onnxruntime releases the GIL, so the event loop keeps accepting
requests while a batch runs). The policy is continuous batching with a short, adaptive hold:

* when the model is idle and the waiting requests are all the requests the service holds (a lone caller, or a
  quiet moment), the batch is dispatched at once: a lone request keeps its batch-1 latency;
* otherwise the batch is held at most ``max_wait_ms`` (counted from the oldest text's arrival or from the end of the
  previous call, whichever is later) while more requests join: requests the service is still parsing or answering,
  or the crowd of the previous call coming back (the most requests the service held at once during that call is
  the target). Without the hold after a call, a crowd
  splits into two half-size batches that alternate;
* the batch is cut at ``max_batch_tokens`` (estimated tokens), and holds one role only (queries and documents
  have different lengths, so they never share a call);
* while a batch runs, new arrivals queue up and form the next batch.

Each request's texts stay together, in order. A text the model refuses fails only the request that sent it:
the run function returns an exception object at that text's position, and the other requests of the same call
get their vectors.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from typing import Any, Callable, Deque, List, Optional, Sequence

RunFn = Callable[[str, List[str]], Sequence[Any]]


class OverloadedError(Exception):
    """The queue is full: the caller should retry later (HTTP 503 with ``Retry-After``)."""


class ShuttingDownError(Exception):
    """The batcher is draining for shutdown and accepts no new texts."""


class _Item:
    __slots__ = ("role", "texts", "tokens", "future", "cancelled", "t_enqueue")

    def __init__(self, role: str, texts: List[str], tokens: int, future: "asyncio.Future[List[Any]]") -> None:
        self.role = role
        self.texts = texts
        self.tokens = tokens
        self.future = future
        self.cancelled = False
        self.t_enqueue = time.perf_counter()


class DynamicBatcher:
    """Merge concurrently submitted texts into calls of ``run(role, texts) -> [vector or exception per text]``.

    Args:
        run: called in the worker thread with one role's merged texts; returns one result per text (an exception
            instance for a text that failed). If it raises, each request of the batch is retried alone, so one
            request's failure cannot fail the others.
        max_batch_tokens, max_wait_ms, max_queue: see :class:`~splade_onnx.serve.settings.ServeSettings`.
        observe: optional callback ``(role, n_texts, n_requests, tokens, queue_wait_s, run_s)`` per batch.
    """

    def __init__(
        self,
        run: RunFn,
        *,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        observe: Optional[Callable[..., None]] = None,
    ) -> None:
        self._run = run
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self._observe = observe
        self._pending: Deque[_Item] = collections.deque()
        self.queued_texts = 0  # texts waiting (not yet in a running batch)
        self.active = 0  # requests the service is handling (parsing, queued, running, answering)
        self._peak = 0  # most requests in the service at once since the last call started
        self._crowd = 1  # that peak at the last call: how many callers may come back for the next one
        self._event: Optional[asyncio.Event] = None
        self._task: Optional["asyncio.Task[None]"] = None
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._closing = False
        self._last_end = 0.0
        self.batches = 0

    # ------------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the dispatcher on the running event loop."""
        if self._task is not None:
            return
        self._event = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="splade-onnx-model")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop accepting texts, finish every text already accepted, then stop the worker thread."""
        self._closing = True
        if self._event is not None:
            self._event.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called (the service is draining)."""
        return self._closing

    # ------------------------------------------------------------------------------------------------ requests
    def enter(self) -> None:
        """A request arrived (counted so the dispatcher knows who may still join a batch)."""
        self.active += 1
        if self.active > self._peak:
            self._peak = self.active

    def leave(self) -> None:
        """A request is answered."""
        self.active -= 1
        if self._event is not None:
            self._event.set()

    async def submit(self, role: str, texts: List[str], tokens: int, timeout_s: Optional[float] = None) -> List[Any]:
        """Queue one request's texts; returns one result per text, in order (vector or exception instance).

        Raises :class:`OverloadedError` when the queue is full, :class:`ShuttingDownError` while draining,
        ``asyncio.TimeoutError`` after ``timeout_s`` (the texts then leave the queue if they had not started).
        """
        if self._closing or self._task is None or self._event is None:
            raise ShuttingDownError("the service is shutting down")
        if self.queued_texts + len(texts) > self.max_queue:
            raise OverloadedError(
                f"the queue is full ({self.queued_texts} texts waiting, limit {self.max_queue}); retry later"
            )
        fut: "asyncio.Future[List[Any]]" = asyncio.get_running_loop().create_future()
        item = _Item(role, texts, tokens, fut)
        self._pending.append(item)
        self.queued_texts += len(texts)
        self._event.set()
        if timeout_s is None:
            return await fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except asyncio.TimeoutError:
            if not item.cancelled and not fut.done():
                item.cancelled = True  # still queued: the dispatcher drops it; running: its result is discarded
            raise

    # ------------------------------------------------------------------------------------------------ dispatcher
    def _live_pending(self) -> List[_Item]:
        while self._pending and self._pending[0].cancelled:
            dropped = self._pending.popleft()
            self.queued_texts -= len(dropped.texts)
        return list(self._pending)

    def _should_wait(self, role: str, first: _Item) -> bool:
        """Hold the batch for more requests? (the caller checks the deadline)"""
        items = [it for it in self._pending if not it.cancelled]
        same = [it for it in items if it.role == role]
        if sum(it.tokens for it in same) >= self.max_batch_tokens:
            return False
        if self.active > len(items):  # requests being parsed (or answered, then coming back) may join
            return True
        return len(same) < self._crowd  # the crowd of the previous call has not all come back yet

    async def _loop(self) -> None:
        assert self._event is not None
        loop = asyncio.get_running_loop()
        while True:
            items = self._live_pending()
            if not items:
                if self._closing:
                    return
                self._event.clear()
                await self._event.wait()
                continue
            first = items[0]
            role = first.role
            # hold at most max_wait from the later of: the oldest text's arrival, the end of the previous call (whose
            # callers are now being answered and, under load, are about to send their next texts)
            deadline = max(first.t_enqueue, self._last_end) + self.max_wait_s
            while not self._closing and self._should_wait(role, first):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._event.clear()
                try:
                    await asyncio.wait_for(self._event.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take(role)
            if not batch:
                continue
            await self._dispatch(loop, role, batch)

    def _take(self, role: str) -> List[_Item]:
        batch: List[_Item] = []
        tokens = 0
        keep: Deque[_Item] = collections.deque()
        while self._pending:
            it = self._pending.popleft()
            if it.cancelled:
                self.queued_texts -= len(it.texts)
                continue
            if it.role != role or (batch and tokens + it.tokens > self.max_batch_tokens):
                keep.append(it)
                continue
            batch.append(it)
            tokens += it.tokens
            self.queued_texts -= len(it.texts)
        self._pending = keep
        return batch

    async def _dispatch(self, loop: asyncio.AbstractEventLoop, role: str, batch: List[_Item]) -> None:
        texts = [t for it in batch for t in it.texts]
        self._crowd = max(1, self._peak)
        self._peak = self.active
        t0 = time.perf_counter()
        waited = max(t0 - it.t_enqueue for it in batch)
        try:
            results = await loop.run_in_executor(self._executor, self._run, role, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"the model returned {len(results)} results for {len(texts)} texts")
            per_item = []
            pos = 0
            for it in batch:
                per_item.append(list(results[pos : pos + len(it.texts)]))
                pos += len(it.texts)
        except Exception:  # noqa: BLE001 - isolate: each request alone, so one cannot fail the others
            per_item = []
            for it in batch:
                try:
                    per_item.append(list(await loop.run_in_executor(self._executor, self._run, role, it.texts)))
                except Exception as e:  # noqa: BLE001
                    per_item.append([e] * len(it.texts))
        self._last_end = time.perf_counter()
        run_s = self._last_end - t0
        self.batches += 1
        if self._observe is not None:
            self._observe(role, len(texts), len(batch), sum(it.tokens for it in batch), waited, run_s)
        for it, res in zip(batch, per_item, strict=False):
            if not it.future.done():
                it.future.set_result(res)
