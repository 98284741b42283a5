"""A clip bank: several bundles played one at a time, switched with a crossfade.

``livetex play A B C`` or ``livetex play BANK/`` (its subdirectories, sorted by name). One clip plays at
a time, as a *deck*: its own bundle, walk, scheduler and prefetcher, on its own timeline (deck time is
master time minus the moment the deck started), so each clip keeps its graph, walk settings and fps.
The window keeps the first clip's frame size and fps: frames of other clips are fitted into that size
(letterboxed) by the deck's decoder, and a deck's frame is the one due at the output frame's time.

A switch (next, previous, clip N, or the autopilot every N bars of the tempo clock) prepares the
incoming deck on a background thread: open the bundle, decide its first window, decode it. Only then
is the deck given a start time; the window crossfades from the outgoing deck's frames to the incoming
one's over ``FADE_S`` and the outgoing deck is closed (its frame store freed) off the drawing thread.
The window never waits for a clip. At most two bundles are open: the current and the incoming one.

A clip that cannot be opened (a damaged bundle) is said in one line (log, HUD, ``--stats`` events),
marked bad and skipped from then on; the show stays on the current clip.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from ..bundle import MANIFEST
from ..errors import LivetexError

FADE_S = 0.5            # crossfade between two clips
LEAD_S = 0.1            # a prepared deck starts this long after it is ready (its start is in the future)
PREP_AHEAD_S = 2.5      # the autopilot prepares the next clip this long before its bar
ALERT_S = 10.0          # a bad clip's line stays on the HUD this long
PREP_SWITCH_S = 0.0005  # the GIL switch interval while a clip is prepared (see _prepare)
BEATS_PER_BAR = 4


def bank_paths(paths: list[str]) -> list[str]:
    """The clips of ``livetex play PATH...``: each PATH is a bundle, or a directory of bundles (its
    non-hidden subdirectories, sorted by name). Nothing is opened here."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p) and not os.path.exists(os.path.join(p, MANIFEST)):
            subs = sorted(e.path for e in os.scandir(p) if e.is_dir() and not e.name.startswith("."))
            if any(os.path.exists(os.path.join(s, MANIFEST)) for s in subs):
                out.extend(subs)
                continue
        out.append(p)     # a bundle (or a bad path: load_bundle says what is wrong with it)
    return out


def clip_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


class DeckClock:
    """The master clock shifted to a deck's start: deck time 0 is master time ``t0``."""

    def __init__(self, master, t0: float = 0.0):
        self.master, self.t0 = master, float(t0)

    def now(self) -> float:
        return self.master.now() - self.t0


class FittedStore:
    """A frame store whose frames are fitted into ``size`` (the window's texture), letterboxed like the
    window fits a frame: decoding threads pay the resize, never the drawing loop."""

    def __init__(self, store, size: tuple[int, int]):
        self.store, self.size = store, tuple(size)
        self.n = store.n
        w, h = store.size
        tw, th = self.size
        s = min(tw / w, th / h)
        self.inner = (max(1, round(w * s)), max(1, round(h * s)))
        self.at = ((tw - self.inner[0]) // 2, (th - self.inner[1]) // 2)

    def __len__(self) -> int:
        return self.n

    def frame(self, k: int) -> np.ndarray:
        import cv2
        small = cv2.resize(self.store.frame(k), self.inner, interpolation=cv2.INTER_AREA
                           if self.inner[0] < self.store.size[0] else cv2.INTER_LINEAR)
        if self.inner == self.size:
            return small
        out = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        x, y = self.at
        out[y:y + self.inner[1], x:x + self.inner[0]] = small
        return out


class Deck:
    """One clip playing: its bundle, scheduler and prefetcher, on the master clock shifted by ``t0``."""

    def __init__(self, index: int, path: str, bundle, scheduler, prefetcher, clock: DeckClock,
                 settings: dict, song=None):
        self.index, self.path, self.name = index, path, clip_name(path)
        self.bundle, self.scheduler, self.prefetcher, self.clock = bundle, scheduler, prefetcher, clock
        self.fps = float(bundle.fps)
        self.settings = settings        # the clip's own walk settings (temperature, threshold)
        self.song = song                # a SongCondition to shift to the deck's start, or None
        self.t0 = clock.t0
        self.began = self.auto = self.late = False
        self.prep_s = 0.0
        self.n0 = 0                     # the output frame where its crossfade begins

    def start(self, t0: float) -> None:
        self.t0 = self.clock.t0 = float(t0)
        if self.song is not None:
            self.song.offset_s = self.t0
        self.scheduler.start()

    def take(self, t: float):
        """``(src, rgb)`` of the deck's frame due at master time ``t``, or None (never blocks)."""
        m = int(np.floor((t - self.t0) * self.fps + 1e-9))
        return self.prefetcher.take(m) if m >= 0 else None

    def close(self) -> None:
        self.scheduler.stop()
        self.prefetcher.close()
        self.scheduler = self.prefetcher = self.bundle = None


class Bank:
    """The clips, the current deck, and the switch in progress.

    ``open_deck(index, path)`` (given by the player) opens a clip as a Deck, not started; it runs on
    the bank's preparing thread and raises LivetexError for a bad clip. ``fps``: the output's.
    """

    def __init__(self, paths: list[str], first: Deck, open_deck, clock, tempo, controls, stats, fps: float,
                 autopilot_bars: float | None = None, on_start=None):
        self.paths = list(paths)
        self.names = [clip_name(p) for p in paths]
        self.current = first
        self.open_deck, self.clock, self.tempo = open_deck, clock, tempo
        self.controls, self.stats, self.fps = controls, stats, float(fps)
        self.bars = float(autopilot_bars or 4)
        self.on_start = list(on_start or [])   # called with a deck as its crossfade begins (knobs follow it)
        self.lock = threading.Lock()
        self.bad: set[int] = set()
        self.incoming: Deck | None = None  # prepared, with a start time
        self.preparing: int | None = None  # clip index being opened
        self.pending: int | None = None    # asked while busy: done after the switch in progress
        self.pending_auto = False
        self.closed = False
        self.last_clip = first.index
        self.alert: tuple[float, str] | None = None
        self._auto_beat = None             # the bar boundary the autopilot last prepared for
        self._auto_at = None
        self.opened = 1                    # bundles opened so far (the first one at start)
        self.switches: list[dict] = []
        self.skipped: list[dict] = []
        self.fade_frames = max(1, int(round(FADE_S * self.fps)))
        self._threads: list[threading.Thread] = []

    # ---- requests (any thread: keys, OSC, MIDI, the autopilot)
    def next(self, step: int = 1) -> int | None:
        with self.lock:
            base = self.pending if self.pending is not None else (
                self.incoming.index if self.incoming is not None else
                self.preparing if self.preparing is not None else self.current.index)
        n = len(self.paths)
        for i in range(1, n):
            j = (base + step * i) % n
            if j not in self.bad:
                return self.select(j)
        self.stats.event("clip bank: no other clip to switch to")
        return None

    def select(self, index: int, at: float | None = None, auto: bool = False) -> int | None:
        """Switch to clip ``index`` (0-based): at master time ``at`` if given (the autopilot's bar), else
        as soon as it is ready. Returns the index, or None if refused."""
        if not 0 <= index < len(self.paths):
            self.stats.event(f"clip bank: no clip {index + 1} (the bank has {len(self.paths)})")
            return None
        if index in self.bad:
            self._say(f"clip {index + 1} ({self.names[index]}) is damaged: skipped")
            return None
        with self.lock:
            if self.closed:
                return None
            if self.preparing is not None or self.incoming is not None:
                self.pending, self.pending_auto = index, auto      # after the switch in progress
                return index
            if index == self.current.index:
                return index
            self.preparing = index
        t = threading.Thread(target=self._prepare, args=(index, at, auto), name="livetex-bank-prepare",
                             daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return index

    def _say(self, msg: str) -> None:
        self.alert = (time.perf_counter(), msg)
        self.stats.event(msg)

    def _prepare(self, index: int, at: float | None, auto: bool) -> None:
        t_prep = time.perf_counter()
        # Opening a clip is seconds of Python (graph, walk calibration of an older bundle) holding the GIL:
        # every GL call of the drawing loop releases it and would wait up to a whole switch interval
        # (5 ms) to get it back, tens of times a frame. A short interval while preparing keeps the loop
        # on time. One preparation runs at a time, so restoring the old value is safe.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, PREP_SWITCH_S))
        try:
            deck = self.open_deck(index, self.paths[index])
        except Exception as e:    # a damaged clip never stops the show: said once, skipped from now on
            msg = str(e) if isinstance(e, LivetexError) else f"{type(e).__name__}: {e}"
            with self.lock:
                self.bad.add(index)
                self.preparing = None
                self.opened += 1
            self.skipped.append({"clip": index, "name": self.names[index], "error": msg,
                                 "t": round(self.clock.now(), 3)})
            self._say(f"clip {index + 1} ({self.names[index]}) skipped: {msg}")
            return
        finally:
            sys.setswitchinterval(switch)
        prep_s = time.perf_counter() - t_prep
        now = self.clock.now()
        t0 = now + LEAD_S if at is None or at < now + LEAD_S else at
        n0 = int(np.ceil(t0 * self.fps - 1e-6))        # the crossfade starts on an output frame
        with self.lock:
            self.opened += 1
            self.preparing = None
            if self.closed:
                deck.close()
                return
            deck.start(n0 / self.fps)
            deck.n0 = n0
            deck.prep_s, deck.auto, deck.late = prep_s, auto, bool(at is not None and t0 > at)
            self.incoming = deck

    # ---- the window's side
    def take(self, n: int):
        """``(src, rgb)`` for output frame ``n`` (src -1 for a crossfade frame), or None if not ready.
        Called by the drawing loop only, once per output frame."""
        t = n / self.fps
        self._autopilot(t)
        cur, inc = self.current, self.incoming
        a = cur.take(t)
        if inc is None or n < inc.n0:
            self.last_clip = cur.index
            return a
        if not inc.began:
            inc.began = True
            self._began(cur, inc, n, t)
        b = inc.take(t)
        i = n - inc.n0
        if i >= self.fade_frames:
            self._finish(cur, inc)
            self.last_clip = inc.index
            return b
        if a is None or b is None:       # one side missing: show the other rather than drop the slot
            self.last_clip = inc.index if b is not None else cur.index
            return b if b is not None else a
        import cv2
        self.last_clip = inc.index
        w = (i + 1) / (self.fade_frames + 1)
        return -1, cv2.addWeighted(a[1], 1.0 - w, b[1], w, 0.0)

    def _began(self, cur: Deck, inc: Deck, n: int, t: float) -> None:
        rec = {"t": round(t, 4), "n": n, "from": cur.index, "to": inc.index, "from_name": cur.name,
               "to_name": inc.name, "frames": self.fade_frames, "beat": round(self.tempo.beat(), 3),
               "autopilot": inc.auto, "prep_s": round(inc.prep_s, 3), "late": inc.late}
        self.switches.append(rec)
        self.stats.event(f"clip {inc.index + 1}/{len(self.paths)}: {inc.name} (from {cur.name}, "
                         f"{'autopilot, ' if inc.auto else ''}crossfade {self.fade_frames} frames)")
        for fn in self.on_start:
            try:
                fn(inc)
            except Exception as e:     # never stop the show for a HUD or knob update
                self.stats.event(f"clip bank: {type(e).__name__}: {e}")

    def _finish(self, cur: Deck, inc: Deck) -> None:
        with self.lock:
            self.current, self.incoming = inc, None
            pending, auto, self.pending = self.pending, self.pending_auto, None
        # Closing joins the outgoing deck's threads: never on the drawing thread.
        t = threading.Thread(target=cur.close, name="livetex-bank-close", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        if pending is not None and pending != inc.index:
            self.select(pending, auto=auto)

    def _autopilot(self, t: float) -> None:
        """Every ``bars`` bars of the tempo clock, move to the next clip: prepared ahead, started on the bar."""
        if not self.controls.autopilot or self.preparing is not None or self.incoming is not None:
            return
        span = self.bars * BEATS_PER_BAR
        now_p = time.perf_counter()
        b = self.tempo.beat(now_p)
        target = float((np.floor(b / span) + 1) * span)
        if target == self._auto_beat:
            return
        wait_s = (target - b) * 60.0 / self.tempo.bpm
        if wait_s > PREP_AHEAD_S:
            return
        self._auto_beat = target
        n = len(self.paths)
        for i in range(1, n):
            j = (self.current.index + i) % n
            if j not in self.bad:
                self.select(j, at=self.clock.now() + wait_s, auto=True)
                return

    def status(self) -> str:
        """The HUD's bank line."""
        cur, inc = self.current, self.incoming
        s = f"clip {cur.index + 1}/{len(self.paths)} {cur.name}"
        if inc is not None or self.preparing is not None:
            j = inc.index if inc is not None else self.preparing
            s += f" -> {j + 1} {self.names[j]}"
        if self.controls.autopilot:
            s += f"  AUTO {self.bars:g} bars"
        if self.alert is not None and time.perf_counter() - self.alert[0] < ALERT_S:
            s += f"  ! {self.alert[1]}"
        return s

    def info(self) -> dict:
        return {"clips": self.names, "opened": self.opened, "bad": sorted(self.bad), "skipped": self.skipped,
                "switches": self.switches,
                "fade_frames": self.fade_frames, "autopilot_bars": self.bars, "current_end": self.current.index}

    def close(self) -> None:
        with self.lock:
            self.closed = True
            decks = [d for d in (self.current, self.incoming) if d is not None]
            self.incoming = None
        for d in decks:
            if d.scheduler is not None:
                d.close()
        for t in self._threads:
            t.join(3.0)
