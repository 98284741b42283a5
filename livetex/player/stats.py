"""What happened during a play: counters, timings and events, written to ``--stats FILE.json``.

Every thread writes here, so each update takes the lock; nothing on the audio callback path does more
than an integer add or a list append.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections import deque

import numpy as np

RECENT = 4096          # exact samples kept per measure (the HUD's recent percentiles, short runs' tests)
RECENT_RECORDS = 2000  # decisions kept in memory; with --stats every one is streamed to a side file
SETTLE_RECORDS = 32    # ... that many decisions after it was taken: its seams (made on their own thread,
                       # at most SEAM_BUDGET_MAX_S later) have filled in their notes by then
MAX_EVENTS = 1000      # a fault that repeats forever must not grow memory either
HIST_PER_DECADE = 200  # a measure's whole-run percentiles come from a log histogram: 1.2 % resolution
HIST_DECADES = (-6, 3)  # 1 us .. 1000 s (negative values: lead times of late steps, mirrored)


def percentiles(x, qs=(50, 99)) -> dict:
    """``{"p50": .., "p99": .., "max": .., "n": ..}`` of ``x`` (None entries when empty)."""
    if isinstance(x, Measure):
        return x.summary(qs)
    x = np.asarray(list(x), np.float64)
    out = {f"p{q}": (float(np.percentile(x, q)) if len(x) else None) for q in qs}
    out["max"] = float(x.max()) if len(x) else None
    out["n"] = int(len(x))
    return out


class Measure:
    """A timing measured for the whole run in constant memory: a log histogram for the run's
    percentiles (a play may last for days), exact min/max, and the most recent samples.

    Iterating (or ``np.asarray``) gives the recent samples, oldest first.
    """

    def __init__(self, recent: int = RECENT):
        lo, hi = HIST_DECADES
        self.edges = np.logspace(lo, hi, (hi - lo) * HIST_PER_DECADE + 1)
        self.pos = np.zeros(len(self.edges) + 1, np.int64)     # bin i: edges[i-1] <= x < edges[i]
        self.neg = np.zeros(len(self.edges) + 1, np.int64)     # the same for -x
        self.zero = 0
        self.n = 0
        self.min = self.max = None
        self._recent = deque(maxlen=recent)

    def append(self, x: float) -> None:
        x = float(x)
        if not np.isfinite(x):
            return
        self._recent.append(x)
        self.n += 1
        self.min = x if self.min is None or x < self.min else self.min
        self.max = x if self.max is None or x > self.max else self.max
        if x > 0:
            self.pos[np.searchsorted(self.edges, x, side="right")] += 1
        elif x < 0:
            self.neg[np.searchsorted(self.edges, -x, side="right")] += 1
        else:
            self.zero += 1

    def extend(self, xs) -> None:
        for x in xs:
            self.append(x)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(list(self._recent))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(list(self._recent), dtype or np.float64)

    def recent(self, n: int) -> list:
        r = list(self._recent)
        return r[-n:]

    def _quantile(self, q: float) -> float:
        """The q-th percentile, the geometric middle of its bin (exact at the extremes)."""
        rank = q / 100.0 * (self.n - 1)
        mids = np.sqrt(self.edges[1:] * self.edges[:-1])
        mids = np.concatenate([[self.edges[0]], mids, [self.edges[-1]]])
        # from the most negative value up: negative bins reversed, zero, positive bins
        counts = np.concatenate([self.neg[::-1], [self.zero], self.pos])
        values = np.concatenate([-mids[::-1], [0.0], mids])
        i = int(np.searchsorted(np.cumsum(counts), rank, side="right"))
        return float(min(max(values[min(i, len(values) - 1)], self.min), self.max))

    def summary(self, qs=(50, 99)) -> dict:
        if self.n == 0:
            return {**{f"p{q}": None for q in qs}, "max": None, "n": 0}
        if self.n <= len(self._recent):                    # every sample is still here: exact
            out = percentiles(list(self._recent), qs)
        else:
            out = {f"p{q}": self._quantile(q) for q in qs}
            out["max"] = self.max
            out["n"] = self.n
        return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.ru0 = resource.getrusage(resource.RUSAGE_SELF)
        self.frames_shown = 0
        self.dropped_late = 0        # the drawing loop woke up after a frame's time was over
        self.dropped_not_ready = 0   # the frame was due but not decoded yet (slow decode / late decision)
        self.frozen_frames = 0       # frames not shown on purpose (freeze)
        self.decisions = 0
        self.jumps = 0
        self.conditioned = 0         # decisions that used audio
        self.seams = 0
        self.audio_blocks = 0
        self.audio_samples = 0
        self.overruns = 0
        self.preroll_blocks = 0      # blocks gathered by the first window of a (re)started mic stream
        self.latency_s = Measure()     # audio arrival -> decision that used it
        self.lead_s = Measure()        # decision time -> first frame of its step on screen
        self.decode_s = Measure()
        self.draw_s = Measure()
        self.records: list[dict] = []  # the most recent decisions (RECENT_RECORDS to twice that)
        self.n_records = 0
        self.events: deque = deque(maxlen=MAX_EVENTS)
        self.n_events = 0
        self._stream = None          # side files every decision and shown frame goes to (--stats)
        self._settling: deque = deque()   # decisions not written yet (their seam notes may still change)
        self.info: dict = {}
        self.first_frame_t: float | None = None   # clock seconds of the first / last frame shown
        self.last_frame_t: float | None = None
        self.shown_src = _Shown()     # source frame of every output frame shown (-1: seam frame)
        self.shown_clip: _Shown | None = None   # a clip bank: the clip of every output frame shown

    def track_clips(self) -> None:
        """A clip bank: also keep the clip of every output frame shown (``shown_clips``)."""
        self.shown_clip = _Shown()

    def stream_to_disk(self) -> None:
        """Keep every decision and every shown frame in temporary side files instead of memory, so
        a play of any length writes them all to ``--stats`` at the end while its memory stays flat."""
        fd, path = tempfile.mkstemp(prefix="livetex-stats-", suffix=".jsonl")
        with self.lock:
            self._stream = (os.fdopen(fd, "w", buffering=1 << 16), path)
            self._settling.extend(self.records)      # the first window is decided before the player opens
        self.shown_src.stream_to_disk()
        if self.shown_clip is not None:
            self.shown_clip.stream_to_disk()

    def close_stream(self) -> None:
        if self._stream is not None:
            f, path = self._stream
            self._stream = None
            f.close()
            _unlink(path)
        self.shown_src.close()
        if self.shown_clip is not None:
            self.shown_clip.close()

    def add(self, **counts) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def event(self, message: str, echo: bool = True) -> None:
        t = time.perf_counter() - self.wall0
        with self.lock:
            self.events.append({"t": round(t, 3), "message": message})
            self.n_events += 1
        if echo:
            print(f"livetex: {message}", file=sys.stderr, flush=True)

    def record(self, rec: dict) -> None:
        with self.lock:
            self.records.append(rec)
            if len(self.records) >= 2 * RECENT_RECORDS:
                del self.records[:-RECENT_RECORDS]
            self.n_records += 1
            if self._stream is not None:
                self._settling.append(rec)
                while len(self._settling) > SETTLE_RECORDS:
                    self._stream[0].write(json.dumps(self._settling.popleft()) + "\n")

    def cpu(self) -> dict:
        wall = time.perf_counter() - self.wall0
        cpu = time.process_time() - self.cpu0
        return {"seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
                "cores": round(cpu / wall, 3) if wall > 0 else None}

    def to_dict(self) -> dict:
        with self.lock:
            span = (self.last_frame_t - self.first_frame_t) if self.first_frame_t is not None else 0.0
            ms = lambda xs: {k: (round(v * 1000, 2) if isinstance(v, float) else v)  # noqa: E731
                             for k, v in percentiles(xs).items()}
            ru = resource.getrusage(resource.RUSAGE_SELF)
            return {
                **self.info,
                "frames_shown": self.frames_shown,
                # frame slots honoured per second of clock (a frozen picture still counts: it is on time)
                "fps_shown": round((self.frames_shown + self.frozen_frames - 1) / span, 3) if span > 0 else None,
                "dropped": self.dropped_late + self.dropped_not_ready,
                "dropped_late": self.dropped_late,
                "dropped_not_ready": self.dropped_not_ready,
                "frozen_frames": self.frozen_frames,
                "decisions": self.decisions,
                "jumps": self.jumps,
                "conditioned_decisions": self.conditioned,
                "seams": self.seams,
                "audio_blocks": self.audio_blocks,
                "audio_samples": self.audio_samples,
                "audio_overruns": self.overruns,
                "audio_preroll_blocks": self.preroll_blocks,
                "latency_ms": ms(self.latency_s),
                "lead_ms": ms(self.lead_s),
                "decode_ms": ms(self.decode_s),
                "draw_ms": ms(self.draw_s),
                "cpu": {**self.cpu(), "user_s": round(ru.ru_utime - self.ru0.ru_utime, 3),
                        "system_s": round(ru.ru_stime - self.ru0.ru_stime, 3),
                        "max_rss_mb": round(ru.ru_maxrss / 1024, 1)},
                "torch_loaded": "torch" in sys.modules,
                "events": list(self.events),
                "events_dropped": self.n_events - len(self.events),
                "decisions_log": self._decisions(),
                "shown_source_frames": self.shown_src.all(),
                **({"shown_clips": self.shown_clip.all()} if self.shown_clip is not None else {}),
            }

    def _decisions(self) -> list:
        if self._stream is None:
            return list(self.records)      # the most recent ones
        f, path = self._stream
        while self._settling:
            f.write(json.dumps(self._settling.popleft()) + "\n")
        f.flush()
        with open(path) as g:
            return [json.loads(line) for line in g]

    def write(self, path: str, d: dict | None = None) -> None:
        """Write the JSON atomically (temp file, then rename)."""
        d = self.to_dict() if d is None else d
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(d, f, indent=1)
        os.replace(tmp, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class _Shown:
    """The source frame of every output frame shown: the last RECENT in memory, all of them in a side
    file (int32, written in blocks) once :meth:`stream_to_disk` is called."""

    BLOCK = 1024

    def __init__(self):
        self._recent: deque = deque(maxlen=RECENT)
        self._buf: list[int] = []
        self._file = None
        self.n = 0

    def stream_to_disk(self) -> None:
        fd, path = tempfile.mkstemp(prefix="livetex-shown-", suffix=".i32")
        self._file = (os.fdopen(fd, "wb"), path)

    def append(self, src: int) -> None:
        self._recent.append(src)
        self.n += 1
        if self._file is not None:
            self._buf.append(src)
            if len(self._buf) >= self.BLOCK:
                self._flush()

    def _flush(self) -> None:
        if self._buf and self._file is not None:
            self._file[0].write(np.asarray(self._buf, np.int32).tobytes())
            self._buf = []

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(list(self._recent))

    def all(self) -> list:
        if self._file is None:
            return list(self._recent)
        self._flush()
        self._file[0].flush()
        return np.fromfile(self._file[1], np.int32).tolist()

    def close(self) -> None:
        if self._file is not None:
            f, path = self._file
            self._file = None
            f.close()
            _unlink(path)
