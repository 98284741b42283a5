"""The tempo clock: one beat grid shared by the HUD, the decisions log and ``--osc-out``.

The grid is a tempo (bpm) and the time of one beat (an anchor on ``perf_counter``); every reader asks
:meth:`TempoClock.beat` for "how many beats since the anchor", so nothing needs to tick. Who sets it:

- taps (key T, ``/livetex/tap``, a MIDI pad): the average interval of the last 4 taps; a pause of
  2 s starts a new count, so a single stray tap never changes the tempo;
- ``double`` / ``half`` / ``nudge`` (shift the grid a little, as a DJ nudges a record) / ``resync``
  (this moment is beat 1 of a bar);
- MIDI clock (24 pulses a beat, Start/Stop), which wins while it runs: a controller that keeps time
  is more exact than hands;
- Ableton Link (``--link``, link.py): while other peers are in the session, their tempo and beat;
- a tempo estimated from the audio (:mod:`livetex.player.analysis`), only while nobody else has set it.

All methods are thread-safe (MIDI, OSC and the window call them) and take the time as an argument
where it matters, so tests can play exact rhythms.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

BPM_RANGE = (20.0, 300.0)
TAP_RESET_S = 2.0          # a pause this long between taps starts a new tap count
TAPS_AVERAGED = 4          # the tempo is the mean interval of the last 4 taps (3 intervals)
NUDGE_S = 0.02             # one nudge shifts the grid by 20 ms
MIDI_PPQN = 24             # MIDI clock pulses per quarter note
MIDI_CLOCK_LOST_S = 0.5    # no pulse for this long: the MIDI clock has stopped leading
BEATS_PER_BAR = 4


def _clamp_bpm(bpm: float) -> float:
    return float(min(max(bpm, BPM_RANGE[0]), BPM_RANGE[1]))


class TempoClock:
    def __init__(self, bpm: float = 120.0, now=time.perf_counter):
        self._now = now
        self._lock = threading.Lock()
        self.bpm = _clamp_bpm(bpm)
        self.anchor = now()            # a time where a bar starts (beat 0)
        self.source = "default"        # who set the tempo last: default, tap, set, midi clock, audio
        self.confidence = 0.0          # of an audio estimate
        self.version = 0
        self._taps: deque = deque(maxlen=TAPS_AVERAGED)
        self._pulses: deque = deque(maxlen=2 * MIDI_PPQN + 1)
        self._pulse_count = 0
        self._last_pulse = -1e9

    # ---- reading
    def beat(self, t: float | None = None) -> float:
        """Beats since the anchor at time ``t`` (default now); integer values fall on the beats."""
        t = self._now() if t is None else t
        with self._lock:
            return (t - self.anchor) * self.bpm / 60.0

    def snapshot(self, t: float | None = None) -> dict:
        b = self.beat(t)
        return {"bpm": round(self.bpm, 3), "beat": round(b, 4), "bar_beat": int(np.floor(b)) % BEATS_PER_BAR + 1,
                "phase": round(b - np.floor(b), 4), "source": self.source,
                "midi_clock": self.midi_clock_running()}

    def midi_clock_running(self, t: float | None = None) -> bool:
        t = self._now() if t is None else t
        return t - self._last_pulse < MIDI_CLOCK_LOST_S

    def _changed(self, source: str) -> None:
        self.source = source
        self.version += 1

    # ---- hands
    def tap(self, t: float | None = None) -> float:
        """One tap. Returns the tempo (unchanged until the second tap of a count)."""
        t = self._now() if t is None else t
        with self._lock:
            if self._taps and t - self._taps[-1] > TAP_RESET_S:
                self._taps.clear()
            self._taps.append(t)
            if len(self._taps) >= 2:
                interval = (self._taps[-1] - self._taps[0]) / (len(self._taps) - 1)
                if interval > 0:
                    self.bpm = _clamp_bpm(60.0 / interval)
            # Each tap is a beat: the grid follows the hand's phase, not only its tempo.
            self.anchor = t - round((t - self.anchor) * self.bpm / 60.0) * 60.0 / self.bpm
            self._changed("tap")
            return self.bpm

    def set_bpm(self, bpm: float, source: str = "set") -> float:
        with self._lock:
            t = self._now()
            b = (t - self.anchor) * self.bpm / 60.0
            self.bpm = _clamp_bpm(float(bpm))
            self.anchor = t - b * 60.0 / self.bpm       # the beat position is kept across the change
            self._changed(source)
            return self.bpm

    def double(self) -> float:
        return self.set_bpm(self.bpm * 2.0, self.source)

    def half(self) -> float:
        return self.set_bpm(self.bpm / 2.0, self.source)

    def nudge(self, direction: float) -> float:
        """Shift the grid later (+) or earlier (-) by ``NUDGE_S`` per unit; returns the beat phase."""
        with self._lock:
            self.anchor += NUDGE_S * float(direction)
            self.version += 1
        return self.beat() % 1.0

    def resync(self, t: float | None = None) -> None:
        """This moment is the downbeat (beat 1 of a bar)."""
        t = self._now() if t is None else t
        with self._lock:
            self.anchor = t
            self.version += 1

    # ---- gear and ears
    def midi_pulse(self, t: float | None = None) -> None:
        """One MIDI clock pulse (0xF8): 24 a beat."""
        t = self._now() if t is None else t
        with self._lock:
            self._pulses.append(t)
            self._pulse_count += 1
            self._last_pulse = t
            if len(self._pulses) >= MIDI_PPQN + 1:
                # The median beat length over the last two beats' pulses: a late burst of pulses (a
                # busy machine) moves a few beat lengths, not the median.
                p = list(self._pulses)
                beat = float(np.median([p[i + MIDI_PPQN] - p[i] for i in range(len(p) - MIDI_PPQN)]))
                if beat > 0:
                    self.bpm = _clamp_bpm(60.0 / beat)
            if (self._pulse_count - 1) % MIDI_PPQN == 0:
                # A pulse that starts a beat: put the grid's nearest beat exactly here.
                self.anchor = t - round((t - self.anchor) * self.bpm / 60.0) * 60.0 / self.bpm
            if self.source != "midi clock":
                self.source = "midi clock"
            self.version += 1

    def midi_start(self, t: float | None = None) -> None:
        """MIDI Start (0xFA): the next pulse is the downbeat."""
        t = self._now() if t is None else t
        with self._lock:
            self._pulse_count = 0
            self._pulses.clear()
            self.anchor = t
            self.version += 1

    def follow(self, bpm: float, beat: float, t: float, source: str) -> None:
        """Another clock leads (Ableton Link): its tempo, and ``beat`` at time ``t``."""
        with self._lock:
            bpm = _clamp_bpm(bpm)
            anchor = t - beat * 60.0 / bpm
            if abs(bpm - self.bpm) > 1e-6 or abs(anchor - self.anchor) > 1e-4 or self.source != source:
                self.bpm, self.anchor = bpm, anchor
                self._changed(source)

    def audio_estimate(self, bpm: float, confidence: float) -> bool:
        """A tempo heard in the audio; taken only while no hand or gear has set the tempo."""
        self.confidence = float(confidence)
        if self.source in ("default", "audio") and not self.midi_clock_running() and confidence >= 0.5:
            if abs(bpm - self.bpm) > 0.5:
                self.set_bpm(bpm, "audio")
            return True
        return False
