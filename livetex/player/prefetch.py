"""Frame prefetcher: decodes the frames the scheduler planned before the window needs them.

The window asks for output frame ``n`` with :meth:`Prefetcher.take`, which never waits: a frame that
is not decoded in time is the caller's to drop. Frames are decoded in plan order by one thread
(JPEG decoding releases the GIL, so it runs beside the drawing thread); frames the window has moved
past are discarded unseen.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np


class Prefetcher:
    """Decoded output frames by output index.

    ``request(n, src)`` plans source frame ``src`` of the store at output position ``n``;
    ``put(n, rgb, src)`` supplies a frame computed elsewhere (a seam); ``take(n)`` returns
    ``(src, rgb)`` or None, and forgets everything before ``n``.
    """

    def __init__(self, store, stats=None, threads: int = 1):
        self.store = store
        self.stats = stats
        self.q: queue.Queue = queue.Queue()
        self.ready: dict[int, tuple[int, np.ndarray]] = {}
        self.planned: dict[int, int] = {}      # n -> source frame, for every planned n not yet taken
        self.lock = threading.Lock()
        self.floor = 0                          # output frames below this are past: never decode them
        self.cond = threading.Condition(self.lock)
        self.errors = 0
        self.threads = [threading.Thread(target=self._run, name=f"livetex-prefetch-{i}", daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def request(self, n: int, src: int) -> None:
        with self.lock:
            self.planned[n] = src
        self.q.put((n, src))

    def put(self, n: int, rgb: np.ndarray, src: int = -1) -> None:
        """Replace output frame ``n`` by a ready-made picture (``src`` -1: not a source frame)."""
        with self.cond:
            if n >= self.floor:
                self.planned[n] = src
                self.ready[n] = (src, rgb)
                self.cond.notify_all()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            n, src = item
            with self.lock:
                if n < self.floor or n in self.ready or self.planned.get(n) != src:
                    continue        # past, replaced by a seam frame, or re-planned
            t = time.perf_counter()
            try:
                rgb = self.store.frame(src)
            except Exception as e:       # a damaged frame is dropped, the show goes on
                self.errors += 1
                if self.errors == 1 and self.stats is not None:
                    self.stats.event(f"cannot decode source frame {src} ({e}); damaged frames are skipped")
                continue
            dt = time.perf_counter() - t
            if self.stats is not None:
                self.stats.decode_s.append(dt)
            with self.cond:
                if n >= self.floor and n not in self.ready and self.planned.get(n) == src:
                    self.ready[n] = (src, rgb)
                    self.cond.notify_all()

    def take(self, n: int):
        """``(src, rgb)`` for output frame ``n`` if decoded, else None. Never blocks."""
        with self.lock:
            if n > self.floor:
                for k in [k for k in self.ready if k < n]:
                    del self.ready[k]
                for k in [k for k in self.planned if k < n]:
                    del self.planned[k]
                self.floor = n
            return self.ready.get(n)

    def source_of(self, n: int) -> int | None:
        with self.lock:
            return self.planned.get(n)

    def wait_ready(self, n: int, timeout: float) -> bool:
        """Block until frame ``n`` is decoded (start-up only, before the clock runs)."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            while n not in self.ready:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def get_frame(self, n: int, timeout: float = 1.0):
        """The frame planned at ``n``, waiting for its decode if needed (the scheduler's seam work,
        never the window). None if it is not planned or not ready in time."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            while n not in self.ready:
                if n not in self.planned or n < self.floor:
                    return None
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.ready[n]

    def close(self, timeout: float = 2.0) -> None:
        with self.lock:
            self.floor = 1 << 62          # everything queued is now in the past: skip it
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join(timeout)
