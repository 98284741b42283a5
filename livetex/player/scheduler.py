"""The sampler thread: decides the walk ahead of the picture, one step per stride.

Output timeline (the renderer's convention): step 0 shows the whole first segment (``W`` frames), every
later step ``k`` appends the last ``S`` frames of the segment it chose, from output frame
``b_k = W + (k - 1) S``. Frame ``n`` is due at ``n / fps`` seconds of the master clock.

When step ``k`` is decided:

- its *deadline* is ``D_k = b_k / fps - margin``; the margin leaves time to decode its frames and to
  make the seam that replaces a few frames *before* ``b_k`` (so it includes those frames' duration);
- the decision is never taken before ``D_k - T`` (``T`` = one stride): the look-ahead is about one
  step, so the picture reacts to the audio within about one stride plus the margin;
- with a live microphone, samples are pushed into the live embedder (livetex.audio.live) as they
  arrive, and it completes one window per stride of audio on its own grid. The grid is placed (at
  start, after the microphone comes back, after a pause) so that windows complete ``SLACK_S`` before
  the steps' deadlines, and step k is decided the moment a window it has not used completes (it may
  look up to ``2 T`` ahead, so a drifting phase never makes it wait a whole stride), or at its deadline
  with the newest row. Every audio block is thus used by a decision at most about one stride after
  it arrived (measured per block: ``latency_ms`` in the stats), and the step is decided as late as the
  margin allows;
- with a song, the window is the audio that will be *heard* during the step's frames (the same
  convention as offline conditioning), so picture and sound are locked whatever the look-ahead.

A late step (the machine stalled) is still decided, at once and without waiting: its frames that are
already past are dropped by the window, the walk stays continuous.

Seams (livetex.seams) are made on their own low-priority thread right after a jump is decided; they
replace the frames around the jump only if they are ready before the first of them is due, otherwise
the hard cut plays (counted as ``seams_late``). The margin grows with the measured seam time, up to
``SEAM_BUDGET_MAX_S``.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import deque

import numpy as np

from .stats import Measure

POLL_S = 0.02             # longest sleep while waiting for the clock (it may be paused or audio-driven)
DECIDE_BUDGET_S = 0.06    # time kept before a step's first frame for decoding it
SLACK_S = 0.04            # live audio windows complete this long before their step's deadline
SEAM_BUDGET_MAX_S = 0.6   # the look-ahead never grows beyond this for seams; slower seams are skipped


class Scheduler(threading.Thread):
    """Runs the walk ahead of the clock and plans every output frame into the prefetcher.

    Parameters
    ----------
    walk : livetex.texture.Walk (its temperature/threshold are set from ``controls`` each step); the
        scheduler moves it frame by frame, one step (a stride of frames) at a time.
    segments : the bundle's Segments; ``fps`` in Hz.
    clock : object with ``now()`` -> seconds of output (the master clock).
    controls : Controls. prefetcher : Prefetcher. stats : Stats.
    start : first source frame.
    song : SongCondition (``song(k)`` -> row) or None.
    planner : livetex.conditioning.Planner over the song, or None (then each step biases the walk by its
        row, as with a microphone). A planner is used while it matches the controls it was built for;
        after a change of alpha, temperature or threshold the steps follow greedily until a new one,
        built on a background thread, is ready.
    live, mic : MicCondition (``push(samples)`` -> LiveSteps) and the MicInput feeding it, or None.
    seamer : livetex.seams.LiveSeams (or Seamer) or None; store : the frame store (for seam frames).
    """

    def __init__(self, walk, segments, fps: float, clock, controls, prefetcher, stats, start: int,
                 song=None, live=None, mic=None, seamer=None, store=None, budget_s: float = DECIDE_BUDGET_S,
                 planner=None):
        super().__init__(name="livetex-scheduler", daemon=True)
        self.walk, self.seg, self.fps = walk, segments, float(fps)
        self.clock, self.controls, self.prefetcher, self.stats = clock, controls, prefetcher, stats
        self.song, self.live, self.mic = song, live, mic
        self.planner = planner
        self._replanning: threading.Thread | None = None
        self.seamer, self.store = seamer, store
        self.W, self.S = segments.window_frames, segments.stride_frames
        self.T = self.S / self.fps
        self.budget_s = budget_s
        self.seam_before = seamer.before if seamer is not None and seamer.mode != "none" else 0
        self.seam_budget = 0.0           # expected time to make a seam (measured, see _seam)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.k = 0
        self.pushed = 0                  # microphone (ring) position pushed into the live embedder
        self.stream_base = 0             # ring position of the live embedder's sample 0
        self.fresh = None                # newest LiveStep, and the index of the last one a step used
        self.used_index = -1
        self.mic_was_lost = False
        self._paused_seen = False
        self._preroll = True
        self.seam_end = 0                # first output frame not claimed by a seam yet
        self.prev_src = int(start)       # source frame shown at the last output frame decided
        self.seam_s = Measure()          # every seam made while playing (s)
        self._recent_seams: deque = deque(maxlen=20)
        self.seams_late = 0
        self.condition_errors = 0
        self._seam_q: queue.Queue = queue.Queue()
        self.listeners: list = []        # callables given every decision record before it is logged (the
                                         # tempo clock's beat is added; --osc-out sends the texture state)
        self._seam_thread = None
        if self.seam_before:
            self._seam_thread = threading.Thread(target=self._seam_worker, name="livetex-seams", daemon=True)
            self._seam_thread.start()
        from ..conditioning import segment_of
        self._seg_of = segment_of(np.arange(walk.n), segments)
        self._follower = None            # conditioning.LiveFollower, made on the first conditioned step
        self.walk.reset(int(start))
        self._last_src = int(start)
        self.k = 0
        # the first window: planned if there is a plan (it starts the song), else the walk's own
        self._decide(0, None, controls.alpha if planner is not None else 1.0, {}, [])

    @property
    def margin(self) -> float:
        """How long before a step's first frame it must be decided: its seam's frames before the jump
        plus the time to make the seam (or at least to decode the frames)."""
        return self.seam_before / self.fps + max(self.budget_s, self.seam_budget)

    def warm_up(self) -> None:
        """Before the clock starts: run the conditioner once (first calls load libraries and models),
        and make one seam (loads the flow solver and measures the seam cost, which sets the look-ahead)."""
        if self.song is not None:
            self._guard(self.song, 0)
        if self.live is not None:
            self._guard(self.live.push, np.zeros(int(self.live.window_s * self.live.rate) + 1, np.float32))
            self.live.reset()
        if self.seam_before == 0:
            return
        n = len(self.store)
        a, b = n // 3, (2 * n) // 3
        self._make_seam(a, b, self.seamer.before, self.seamer.after)

    def _make_seam(self, prev_src: int, next_src: int, kb: int, ka: int):
        from ..seams import seam_weights
        sm, n = self.seamer, len(self.store)
        t0 = time.perf_counter()
        a_idx, b_idx = sm.sources(prev_src, next_src, n, before=kb, after=ka)
        cache: dict[int, np.ndarray] = {}

        def get(i):
            i = int(min(max(i, 0), n - 1))
            if i not in cache:
                cache[i] = self.store.frame(i)
            return cache[i]
        frames = sm.blend([get(i) for i in a_idx], [get(i) for i in b_idx], t=seam_weights(kb, ka),
                          prev=get(a_idx[0] - 1), nxt=get(b_idx[-1] + 1))
        dt = time.perf_counter() - t0
        self._recent_seams.append(dt)
        self.seam_budget = min(SEAM_BUDGET_MAX_S, 1.25 * float(np.percentile(self._recent_seams, 90)) + 0.01)
        return frames, dt

    # ---- timeline geometry
    def first_frame(self, k: int) -> int:
        return 0 if k == 0 else self.W + (k - 1) * self.S

    def frame_count(self, k: int) -> int:
        return self.W if k == 0 else self.S

    def _plan(self, k: int, frames) -> None:
        b = self.first_frame(k)
        for i, src in enumerate(frames):
            self.prefetcher.request(b + i, int(src))

    # ---- thread
    def run(self) -> None:
        if self.mic is not None:
            # Audio that arrived before the clock started (device start-up, warm-up) is used by the
            # first decision but is not a latency sample: nothing could have reacted to it earlier.
            self.mic.ring.take_arrivals(self.mic.ring.total)
            self._restart_stream()
        try:
            while not self.stop_event.is_set():
                self._decide_next()
        except BaseException as e:  # surfaced by the window loop, which stops the player
            self.error = e

    def stop(self, timeout: float = 2.0) -> None:
        """Stop deciding and wait for the threads (a native call cut off at exit aborts the process)."""
        self.stop_event.set()
        self._seam_q.put(None)
        if self.is_alive():
            self.join(timeout)
        if self._seam_thread is not None:
            self._seam_thread.join(timeout)

    def _wait_until(self, t: float) -> bool:
        """Sleep until clock time ``t``; False if stopped. Keeps the microphone watchdog running."""
        while not self.stop_event.is_set():
            if self.mic is not None:
                self._pump()
            left = t - self.clock.now()
            if left <= 0:
                return True
            time.sleep(min(POLL_S, left))
        return False

    def _decide_next(self) -> None:
        k = self.k
        t_k = self.first_frame(k) / self.fps
        deadline = t_k - self.margin
        # Live audio: up to two strides early, so a step is always decided the moment a new audio
        # window completes, whatever the phase between the audio's and the picture's stride grids.
        if not self._wait_until(deadline - (2 * self.T if self.live is not None else self.T)):
            return
        extra, info, arrivals = self._audio(k, deadline)
        c = self.controls
        w = self.walk
        if w.temperature != c.temperature:
            w.temperature = c.temperature
        w.threshold = c.threshold
        alpha = c.alpha if extra is not None else 1.0
        self._decide(k, extra, alpha, info, arrivals)

    def _decide(self, k: int, extra, alpha: float, info: dict, arrivals) -> None:
        """Walk step k's frames (the whole first window for k = 0), queue them and their seams."""
        w = self.walk
        planner = self._planner(k, extra, alpha)
        b0 = self.first_frame(k)
        count = self.frame_count(k)
        frames = np.empty(count, np.int64)
        jumps = []
        if planner is None and extra is not None and alpha < 1.0:
            if self._follower is None:
                from ..conditioning import LiveFollower
                self._follower = LiveFollower(w, self.seg, alpha)
            if k == 0:
                frames[0] = w.p
                rest, js = self._follower.advance(extra, count - 1, alpha, info.get("level_db"))
                frames[1:] = rest
                jumps = [b0 + 1 + j for j in js]
            else:
                frames[:], js = self._follower.advance(extra, count, alpha, info.get("level_db"))
                jumps = [b0 + j for j in js]
            self.prev_src = int(frames[-1])
        else:
            for i in range(count):
                if k == 0 and i == 0:
                    f = w.p                                  # the start frame
                elif planner is not None:
                    f = w.move(planner.choose(b0 + i - 1))
                else:
                    f = w.step()
                if f != self.prev_src + 1 and (k > 0 or i > 0):
                    jumps.append(b0 + i)
                frames[i] = f
                self.prev_src = f
        if self.planner is not None:
            info["planned"] = planner is not None
        t_dec = time.perf_counter()
        now = self.clock.now()
        self._plan(k, frames)
        t_k = b0 / self.fps
        self.stats.latency_s.extend(t_dec - a for a in arrivals)
        if k > 0:
            self.stats.lead_s.append(t_k - now)
        # a planned step follows the song even without a row of its own (the first window starts the plan)
        conditioned = extra is not None or planner is not None
        self.stats.add(decisions=1, jumps=len(jumps), conditioned=int(conditioned))
        rec = {"k": k, "frame": int(frames[0]), "segment": int(self._seg_of[frames[-1]]), "jump": bool(jumps),
               "jumps": [int(j) for j in jumps], "t": round(now, 4),
               "lead_ms": round((t_k - now) * 1000, 1), "temperature": round(w.temperature, 5),
               "threshold": round(w.threshold, 4), "alpha": round(alpha, 4), "conditioned": conditioned, **info}
        if extra is not None:
            # How much the audio favoured what is shown: 1 = indifferent, > 1 = the audio's pick.
            rec["audio_pref"] = round(float(extra[self._seg_of[frames[-1]]]) * len(extra), 4)
            if planner is None and self._follower is not None and self._follower.last_values is not None:
                # ... and where it stands in all the live walk weighs (T_a and loudness): 0.5 = indifferent
                rec["music_rank"] = round(self._follower.rank(int(frames[-1])), 4)
        prev = {j: int(frames[j - b0 - 1]) if j > b0 else self._last_src for j in jumps}
        if jumps:
            rec["cuts"] = [[prev[j], int(frames[j - b0])] for j in jumps]      # source frames: from, to
        if jumps and self.seam_before:
            for j in jumps:
                self._seam(j, prev[j], int(frames[j - b0]), rec)
        self._last_src = int(frames[-1])
        if k > 0:
            self._publish(rec)
            self.stats.record(rec)
        self.k = k + 1

    def _publish(self, rec: dict) -> None:
        for fn in self.listeners:
            try:
                fn(rec)
            except Exception:      # an output's fault never stops the walk (it reports its own)
                pass

    def _planner(self, k: int, extra, alpha: float):
        """The song's planner if it applies to step k as the controls stand, else None (and, if the
        controls have moved, a new planner is started in the background)."""
        pl = self.planner
        if pl is None or (extra is None and k > 0) or self.first_frame(k) + self.frame_count(k) > pl.n_out:
            return None
        want = (float(alpha), float(self.walk.temperature), float(self.walk.threshold))
        if pl.planned_for == want:
            return pl
        if self._replanning is None or not self._replanning.is_alive():
            def rebuild():
                from ..conditioning import Planner
                try:
                    new = Planner(self.walk.fork(0), pl.ev.T, want[0], pl.rng, self.seg, pl.n_out, pl.ev.loud,
                                  pl.energy_weight, avoid=pl.avoid)
                    new.walk = self.walk
                    if new.planned_for == want:   # the controls may have moved meanwhile
                        self.planner = new
                except Exception:                # keep playing (greedily) whatever happens here
                    self.condition_errors += 1
            self._replanning = threading.Thread(target=rebuild, name="livetex-replan", daemon=True)
            self._replanning.start()
        return None

    # ---- audio
    def _audio(self, k: int, deadline: float) -> tuple[np.ndarray | None, dict, list[float]]:
        """The audio row for step ``k`` (None: unconditional), a note for the log, and the arrival
        times of the microphone blocks this decision is the first to use."""
        if self.song is not None:
            a, b = self.song.window(k)
            row = self._guard(self.song, k)
            info = {"audio": "song" if row is not None else "ended", "audio_t": round(b / self.song.sr, 4)}
            if row is not None and b > a:
                from ..audio import level_db
                info["level_db"] = round(float(level_db(np.asarray(self.song.y[a:b], np.float32)[None])[0]), 1)
            return row, info, []
        if self.live is None:
            return None, {}, []
        mic, ring = self.mic, self.mic.ring
        while not self.stop_event.is_set():
            ok = self._pump()
            if not ok or self.clock.now() >= deadline:
                break
            if self.fresh is not None and self.fresh.index > self.used_index:
                break
            mic.wake.clear()
            mic.wake.wait(POLL_S)
        if not self._pump():
            return None, {"audio": "lost"}, []
        st = self.fresh
        if st is None:
            return None, {"audio": "filling"}, []
        info = {"audio": "mic", "window": st.index, "level_db": round(st.level_db, 1),
                "gain_db": round(float(20 * np.log10(max(st.gain, 1e-9))), 1)}
        if st.index <= self.used_index:
            # No new window by the deadline (the audio clock drifted, or the machine stalled): the
            # newest row stands in if it is recent, music being locally steady.
            age = (self.pushed - self.stream_base) / ring.sr - st.end_s
            if age > 2 * self.T:
                return None, {"audio": "stale"}, []
            info["reused"] = True
            return st.probs, info, []
        self.used_index = st.index
        covered = self.stream_base + int(st.end_s * ring.sr)
        arrivals = ring.take_arrivals(covered)
        if self._preroll:
            # The first window of a (re)started stream gathers the audio from before it started:
            # that wait is start-up, not the steady latency this measures (counted separately).
            self._preroll = False
            self.stats.add(preroll_blocks=len(arrivals))
            arrivals = []
        return st.probs, info, arrivals

    def _pump(self) -> bool:
        """Push the microphone samples that arrived since the last call into the live embedder.
        Returns whether the microphone is live; restarts the embedder's stream after a loss."""
        mic, ring = self.mic, self.mic.ring
        if not mic.check():
            self.mic_was_lost = True
            ring.take_arrivals(ring.total)        # blocks no decision will use: not latency samples
            return False
        paused = self.controls.paused
        if self.mic_was_lost or (self._paused_seen and not paused):
            self._restart_stream()                # a new stream, or the clock moved on: a new grid
        self.mic_was_lost = False
        self._paused_seen = paused
        x, start, end = ring.since(self.pushed)
        if start > self.pushed:                   # fell behind by more than the ring holds
            self._restart_stream()
            x, start, end = ring.since(self.pushed)
        self.pushed = end
        steps = self._guard(self.live.push, x)
        if steps:
            self.fresh = steps[-1]
        return True

    def _restart_stream(self) -> None:
        """Start the live embedder's window grid afresh, in phase with the picture.

        Windows complete every stride of audio; the grid is placed so that they complete ``SLACK_S``
        before the steps' deadlines: each step is then decided as soon as its window completes
        (every audio block reaches a decision within about one stride) and as late as it may be
        (the picture shows the step as soon after the sound as the look-ahead allows). Audio already
        in the ring fills the first window; what the ring does not have (a device that just came
        back) is silence.
        """
        mic, ring, sr = self.mic, self.mic.ring, self.mic.ring.sr
        self.live.reset()
        self.fresh, self.used_index = None, -1
        self._preroll = True
        with ring.lock:
            p_last = ring.total
            t_last = ring.arrivals[-1][1] if ring.arrivals else time.perf_counter()
        c_last = self.clock.now() - (time.perf_counter() - t_last)     # clock time of sample p_last
        d = self.first_frame(self.k) / self.fps - self.margin - SLACK_S
        tau = d + math.ceil((c_last - d) / self.T) * self.T               # next such time >= c_last
        base = p_last + int(round(sr * (tau - c_last) - self.live.window_s * sr))
        # Windows that complete before the next step's own one would be taken early by it: skip them.
        self.used_index = max(-1, int(round((d - tau) / self.T)) - 1)
        low = max(mic.opened_pos, ring.total - len(ring.buf) + 1)
        pad = max(0, low - base)
        if pad:
            self._guard(self.live.push, np.zeros(pad, np.float32))
        self.stream_base = base
        self.pushed = base + pad

    def _guard(self, fn, *args):
        """Call the audio side; if it fails, log once and return None (an unconditional step):
        conditioning must never stop the show."""
        try:
            return fn(*args)
        except Exception as e:
            self.condition_errors += 1
            if self.condition_errors == 1:
                self.stats.event(f"audio conditioning failed ({type(e).__name__}: {e}); "
                                 "those steps are unconditional")
            return None

    # ---- seams
    def _seam(self, j: int, prev_src: int, next_src: int, rec: dict) -> None:
        """Hand the seam around the jump landing at output frame ``j`` to the seam thread (it replaces
        the frames only if it finishes before the first of them is due)."""
        sm = self.seamer
        kb = min(sm.before, j - self.seam_end)
        ka = sm.after
        seams = rec.setdefault("seams", [])
        if kb + ka <= 0:
            seams.append({"skipped": "no room"})
            return
        start = j - kb
        if self.clock.now() > start / self.fps - 0.01:
            self.seams_late += 1
            seams.append({"skipped": "late"})
            return
        self.seam_end = j + ka
        note: dict = {}
        seams.append(note)
        self._seam_q.put((start, prev_src, next_src, kb, ka, note))

    def _seam_worker(self) -> None:
        try:
            # Seams are an embellishment: on a busy machine they, not the frames, should lose out
            # (a late seam is skipped; a late frame is a visible stutter). Linux: per-thread nice.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while True:
            job = self._seam_q.get()
            if job is None:
                return
            start, prev_src, next_src, kb, ka, note = job
            if self.clock.now() > start / self.fps - 0.01:
                self.seams_late += 1
                note["skipped"] = "late"
                continue
            try:
                frames, dt = self._make_seam(prev_src, next_src, kb, ka)
            except Exception as e:    # a seam is an embellishment: never stop the show for it
                note["skipped"] = f"error: {type(e).__name__}: {e}"
                continue
            self.seam_s.append(dt)
            if self.clock.now() > start / self.fps - 0.005:
                self.seams_late += 1
                note.update(skipped="late", ms=round(dt * 1000, 1))
                continue
            for i, f in enumerate(frames):
                self.prefetcher.put(start + i, f, -1)
            self.stats.add(seams=1)
            note.update(start=start, frames=kb + ka, ms=round(dt * 1000, 1),
                        method=getattr(self.seamer, "last", None) or self.seamer.mode)
