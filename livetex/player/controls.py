"""The live knobs of the player, shared by the keyboard, OSC and the scheduler.

Parameters (temperature, threshold, alpha) are plain attributes read by the scheduler once per step;
actions that must run on the window's thread (fullscreen, screenshot, quit) go through a queue the
drawing loop empties every iteration. Every setter clamps to a sane range, so a controller sending
garbage cannot break the walk.
"""

from __future__ import annotations

import math
import queue
import threading

TEMPERATURE_RANGE = (1e-3, 10.0)
TEMPERATURE_FACTOR = 1.25     # one key press: x or / 1.25 (temperature acts on a log scale)
LINEAR_STEP = 0.05            # one key press on threshold or alpha

PARAMS = ("temperature", "threshold", "alpha")
SWITCHES = ("freeze", "paused", "hud", "fullscreen", "autopilot")


def _clamp(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


class Controls:
    def __init__(self, temperature: float, threshold: float, alpha: float, hud: bool = False,
                 fullscreen: bool = False):
        self._lock = threading.Lock()
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.freeze = False
        self.paused = False
        self.hud = bool(hud)
        self.fullscreen = bool(fullscreen)
        self.autopilot = False          # a clip bank moves to the next clip every N bars (bank.py)
        self.quit = False
        self.actions: queue.SimpleQueue = queue.SimpleQueue()   # ("screenshot", path) ...
        self.version = 0                                         # bumped on every change (HUD refresh)

    # -- parameters ---------------------------------------------------------------------------
    def set(self, name: str, value) -> float | bool:
        """Set a parameter or switch by name; returns the value actually used (clamped)."""
        with self._lock:
            if name == "temperature":
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError("temperature must be finite")
                v = _clamp(v, *TEMPERATURE_RANGE)
            elif name in ("threshold", "alpha"):
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError(f"{name} must be finite")
                v = _clamp(v, 0.0, 1.0)
            elif name in SWITCHES:
                v = bool(value)
            else:
                raise KeyError(f"unknown control {name!r}")
            setattr(self, name, v)
            self.version += 1
            return v

    def nudge(self, name: str, direction: int) -> float:
        """One key press up (+1) or down (-1)."""
        if name == "temperature":
            return self.set(name, self.temperature * TEMPERATURE_FACTOR ** direction)
        return self.set(name, getattr(self, name) + LINEAR_STEP * direction)

    def toggle(self, name: str) -> bool:
        return self.set(name, not getattr(self, name))

    def request(self, action: str, *args) -> None:
        """Ask the window thread to do something (``screenshot``, ``quit``)."""
        if action == "quit":
            self.quit = True
        self.actions.put((action, *args))
        with self._lock:
            self.version += 1

    def bump(self) -> None:
        """Something the HUD shows changed outside these knobs (tempo, MIDI learn)."""
        with self._lock:
            self.version += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {k: getattr(self, k) for k in PARAMS + SWITCHES}
