"""Dynamic batching: requests that arrive together are predicted as one batch.

Off unless the server is started with ``--max-batch-size``. Requests are grouped by what can be
concatenated (dtype and the shape after axis 0); within a group:

* the first request into an empty group arms a timer of ``max_latency``; when it fires, everything
  pending is predicted as one batch, so no request waits longer than ``max_latency`` for its batch to
  start (the predict itself comes on top);
* a batch never exceeds ``max_batch_size`` rows: a request that would overflow the pending rows first
  dispatches them, and a group that reaches exactly ``max_batch_size`` rows is dispatched at once;
* a request with ``max_batch_size`` rows or more (or a 0-d tensor) is predicted alone, straight away;
* the batch is ``numpy.concatenate`` along axis 0 and every output (one array or each array of a
  mapping) is split back by each request's row count, as views;
* if the batched ``predict`` raises, or returns outputs whose first axis is not the batch's row count,
  every request of the batch is predicted alone, so a bad request fails only itself. The price is
  paid only by batches that hold a bad request: one failed batch call plus one call per request.

Each ``predict`` call's row count is observed in ``pilothouse_model_batch_size`` (failed batch calls
and fallback calls included).

Where ``predict`` runs: ``worker="loop"`` calls it inline on the event loop (from the timer callback,
or from the request that filled the batch); ``worker="thread"`` hands each batch to one dedicated worker
thread, so the loop keeps reading and decoding the next batch's requests while numpy/BLAS (which release
the GIL) compute. See :func:`default_worker` for the choice and the measurements behind it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pilothouse.serving.loaders.base import Array, Prediction

Worker = Literal["loop", "thread"]
MAX_BATCH_SIZE_LIMIT = 4096
MAX_LATENCY_MS_LIMIT = 1000.0


@dataclass(slots=True)
class _Pending:
    array: Array
    rows: int
    future: asyncio.Future[Prediction]


@dataclass(slots=True)
class _Group:
    items: list[_Pending] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Collects concurrent ``predict`` calls into batches; one instance per model, used on one loop."""

    def __init__(
        self,
        predict: Callable[[Array], Prediction],
        max_batch_size: int,
        max_latency_s: float,
        *,
        observe_batch_size: Callable[[float], None] | None = None,
        worker: Worker = "loop",
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_latency_s <= 0:
            raise ValueError("max_latency_s must be positive")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_s
        self._observe = observe_batch_size or (lambda _rows: None)
        self.worker: Worker = worker
        self._groups: dict[tuple[str, tuple[int, ...]], _Group] = {}
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
            if worker == "thread"
            else None
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, x: Array) -> Prediction:
        """Predict ``x`` as part of a batch; raises what predicting ``x`` alone would raise."""
        loop = asyncio.get_running_loop()
        rows = x.shape[0] if x.ndim else 0
        if rows >= self.max_batch_size or x.ndim == 0:
            return await self._alone(loop, x)
        key = (x.dtype.str, x.shape[1:])
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        if group.rows + rows > self.max_batch_size:
            self._dispatch(loop, key)
            group = self._groups[key] = _Group()
        future: asyncio.Future[Prediction] = loop.create_future()
        group.items.append(_Pending(x, rows, future))
        group.rows += rows
        if group.rows >= self.max_batch_size:
            self._dispatch(loop, key)
        elif group.timer is None:
            group.timer = loop.call_later(self.max_latency_s, self._dispatch, loop, key)
        return await future

    async def _alone(self, loop: asyncio.AbstractEventLoop, x: Array) -> Prediction:
        rows = x.shape[0] if x.ndim else 1
        if self._executor is None:
            self._observe(rows)
            return self._predict(x)
        return await loop.run_in_executor(self._executor, self._observed_predict, x, rows)

    def _observed_predict(self, x: Array, rows: int) -> Prediction:
        self._observe(rows)
        return self._predict(x)

    def _dispatch(self, loop: asyncio.AbstractEventLoop, key: tuple[str, tuple[int, ...]]) -> None:
        group = self._groups.pop(key, None)
        if group is None or not group.items:
            return
        if group.timer is not None:
            group.timer.cancel()
        items = group.items
        if self._executor is None:
            _deliver(items, self._run(items, group.rows))
            return
        done = loop.run_in_executor(self._executor, self._run, items, group.rows)
        done.add_done_callback(lambda f: _deliver_future(items, f))

    def _run(self, items: list[_Pending], rows: int) -> list[Prediction | BaseException]:
        """Predict one batch (any thread); per request, its prediction or its exception."""
        if len(items) == 1:
            return [self._call(items[0].array, items[0].rows)]
        batch = np.concatenate([p.array for p in items])
        result = self._call(batch, rows)
        if not isinstance(result, BaseException):
            parts = _split(result, [p.rows for p in items], rows)
            if parts is not None:
                return parts
        # The batch failed (or its outputs are not per-row): each request on its own.
        return [self._call(p.array, p.rows) for p in items]

    def _call(self, x: Array, rows: int) -> Prediction | BaseException:
        self._observe(rows)
        try:
            return self._predict(x)
        except Exception as exc:
            return exc


def _split(prediction: Prediction, sizes: list[int], total: int) -> list[Prediction | BaseException] | None:
    """Split every output along axis 0 by ``sizes``; None when an output is not one row per input row."""
    offsets = np.cumsum(sizes)[:-1]
    if isinstance(prediction, Mapping):
        arrays = {name: np.asarray(value) for name, value in prediction.items()}
        if any(a.ndim == 0 or a.shape[0] != total for a in arrays.values()):
            return None
        pieces = {name: np.split(a, offsets) for name, a in arrays.items()}
        return [{name: pieces[name][i] for name in arrays} for i in range(len(sizes))]
    array = np.asarray(prediction)
    if array.ndim == 0 or array.shape[0] != total:
        return None
    return list(np.split(array, offsets))


def _deliver(items: list[_Pending], results: list[Prediction | BaseException]) -> None:
    for pending, result in zip(items, results, strict=True):
        if pending.future.done():  # the request's task was cancelled (client gone)
            continue
        if isinstance(result, BaseException):
            pending.future.set_exception(result)
        else:
            pending.future.set_result(result)


def _deliver_future(items: list[_Pending], done: asyncio.Future[list[Prediction | BaseException]]) -> None:
    if done.cancelled():
        results: list[Prediction | BaseException] = [asyncio.CancelledError()] * len(items)
    elif (exc := done.exception()) is not None:  # e.g. MemoryError in concatenate
        results = [exc] * len(items)
    else:
        results = done.result()
    _deliver(items, results)


def default_worker(platform: str) -> Worker:
    """Where batched predictions run when ``--batch-worker`` is not given: one worker thread.

    Measured with ``benchmarks/modelserver/bench.py --batching`` (iris LogisticRegression, hey, c=32,
    max batch 32, 5 ms; shared 2-CPU machine, medians of 3 rounds): batching off 1,610 req/s, p99 64 ms;
    on the loop 6,709 req/s, p99 16 ms; on a thread 7,797 req/s, p99 9.6 ms. Even for this tiny model
    the thread wins: while one batch predicts, the loop reads and decodes the next batch's requests.
    For the embeddings model (milliseconds per forward pass, numpy releases the GIL) it also keeps
    health checks answered. ``platform`` is accepted for a per-format choice later.
    """
    del platform
    return "thread"
