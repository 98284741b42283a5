"""What happened during a play: counters, timings and events, written to ``--stats FILE.json``.

Every thread writes here, so each update takes the lock; nothing on the audio callback path does more
than an integer add or a list append.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections import deque

import numpy as np

MAX_RECORDS = 20000   # per-decision records kept (about 67 minutes at a 0.2 s stride)
MAX_SAMPLES = 200000  # timing samples kept per measure: a play may last for days, memory may not grow


def percentiles(x, qs=(50, 99)) -> dict:
    """``{"p50": .., "p99": .., "max": .., "n": ..}`` of ``x`` (None entries when empty)."""
    x = np.asarray(list(x), np.float64)
    out = {f"p{q}": (float(np.percentile(x, q)) if len(x) else None) for q in qs}
    out["max"] = float(x.max()) if len(x) else None
    out["n"] = int(len(x))
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
        self.latency_s: deque = deque(maxlen=MAX_SAMPLES)     # audio arrival -> decision that used it
        self.lead_s: deque = deque(maxlen=MAX_SAMPLES)        # decision time -> first frame of its step on screen
        self.decode_s: deque = deque(maxlen=MAX_SAMPLES)
        self.draw_s: deque = deque(maxlen=MAX_SAMPLES)
        self.records: list[dict] = []
        self.events: list[dict] = []
        self.info: dict = {}
        self.first_frame_t: float | None = None   # clock seconds of the first / last frame shown
        self.last_frame_t: float | None = None
        self.shown_src: deque = deque(maxlen=MAX_SAMPLES)          # source frame of every output frame shown (-1: seam frame)

    def add(self, **counts) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def event(self, message: str, echo: bool = True) -> None:
        t = time.perf_counter() - self.wall0
        with self.lock:
            self.events.append({"t": round(t, 3), "message": message})
        if echo:
            print(f"livetex: {message}", file=sys.stderr, flush=True)

    def record(self, rec: dict) -> None:
        with self.lock:
            if len(self.records) < MAX_RECORDS:
                self.records.append(rec)

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
                "decisions_log": list(self.records),
                "shown_source_frames": list(self.shown_src),
            }

    def write(self, path: str) -> None:
        """Write the JSON atomically (temp file, then rename)."""
        d = self.to_dict()
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(d, f, indent=1)
        os.replace(tmp, path)
