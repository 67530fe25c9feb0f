"""Group commit: concurrent producers in one process share durable transactions."""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from genattr.ledger.entry import Entry
from genattr.ledger.errors import LedgerError

if TYPE_CHECKING:
    from genattr.ledger.log import TransparencyLog

__all__ = ["GroupCommitter"]


class GroupCommitter:
    """Group commit for concurrent producers in one process.

    Callers `submit` single entries from any thread; a background thread drains whatever is queued (up to
    `max_batch`) into one durable transaction and then resolves every caller's future with its index. Under
    load this amortises the fsync over the batch; when idle a lone entry commits immediately.
    """

    def __init__(self, log: TransparencyLog, *, max_batch: int = 256, max_wait: float = 0.0) -> None:
        self.log = log
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[tuple[tuple[bytes, bytes], concurrent.futures.Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, entry: Entry | bytes) -> concurrent.futures.Future[int]:
        if self._closed:
            raise LedgerError("group committer is closed")
        row = self.log._validate(entry)  # reject bad entries before they can fail someone else's batch
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put((row, fut))
        return fut

    def append(self, entries: Sequence[Entry | bytes]) -> list[int]:
        futures = [self.submit(e) for e in entries]
        return [f.result() for f in futures]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=self.max_wait) if self.max_wait else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                indices = self.log._append_rows([row for row, _ in batch])
            except BaseException as e:  # every waiter learns about the failure
                for _, fut in batch:
                    fut.set_exception(e)
            else:
                for (_, fut), idx in zip(batch, indices, strict=True):
                    fut.set_result(idx)
            if stop:
                return

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
