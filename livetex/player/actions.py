"""The one action table behind the keyboard, OSC and MIDI.

Every knob, switch and button of the player is an :class:`Action` here, once: its name, what it moves
(the :class:`~livetex.player.controls.Controls` or the :class:`~livetex.player.tempo.TempoClock`) and
how it reads a value. The keyboard (window.py), OSC (``/livetex/<name>``, osc.py) and MIDI mappings
(midi.py) only name actions, so a new knob is one line here and reaches all three.

Kinds, and what each input does with them:

======== ====================================== ============================= ==========================
kind     OSC ``/livetex/<name> [v]``           MIDI CC (0..127)              MIDI note / key
======== ====================================== ============================= ==========================
param    v in the knob's own units (clamped)   absolute fader over the range one step up (``+1``)
switch   1 on / 0 off / nothing: toggle        on above 63, off below 64     toggle
trigger  fires (v passed along if any)         fires when it goes above 63   fires
======== ====================================== ============================= ==========================

``Actions.perform(name, how, value)`` is the single entry point: ``how`` is ``"set"`` (own units),
``"fader"`` (0..1), ``"step"`` (+-1 steps) or ``"press"`` (a toggle or a trigger).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .controls import TEMPERATURE_FACTOR, TEMPERATURE_RANGE


@dataclass(frozen=True)
class Action:
    name: str
    kind: str                       # "param", "switch" or "trigger"
    help: str
    lo: float = 0.0                 # params: the range a fader spans
    hi: float = 1.0
    log: bool = False               # the fader moves on a log scale (temperature)
    step: float = 0.05              # one step (a key press): added, or a factor if ``log``


TABLE: tuple[Action, ...] = (
    Action("temperature", "param", "sampling temperature: more (up) or fewer (down) jumps",
           lo=0.01, hi=TEMPERATURE_RANGE[1], log=True, step=TEMPERATURE_FACTOR),
    Action("alpha", "param", "visual weight in the audio mix (0: follow the audio, 1: ignore it)"),
    Action("threshold", "param", "drop transitions below this fraction of the best one"),
    Action("bpm", "param", "tempo of the beat grid", lo=40.0, hi=240.0, step=1.0),
    Action("freeze", "switch", "hold the picture (the walk goes on)"),
    Action("paused", "switch", "stop the clock (picture, song and walk)"),
    Action("hud", "switch", "show the heads-up display"),
    Action("fullscreen", "switch", "fullscreen on the window's screen"),
    Action("learn", "switch", "MIDI learn: press a key (or send its OSC), then move a control"),
    Action("tap", "trigger", "tap the tempo (mean of the last 4 taps; a 2 s pause starts again)"),
    Action("double", "trigger", "double the tempo"),
    Action("half", "trigger", "halve the tempo"),
    Action("nudge_later", "trigger", "shift the beat grid 20 ms later"),
    Action("nudge_earlier", "trigger", "shift the beat grid 20 ms earlier"),
    Action("resync", "trigger", "this moment is the downbeat (beat 1 of a bar)"),
    Action("clip_next", "trigger", "crossfade to the next clip of the bank"),
    Action("clip_prev", "trigger", "crossfade to the previous clip of the bank"),
    Action("clip", "trigger", "crossfade to clip N of the bank (1: the first; OSC: /livetex/clip N)"),
    Action("autopilot", "switch", "move to the next clip of the bank every N bars (--autopilot N)"),
    Action("screenshot", "trigger", "save a PNG of the window (OSC: optional path)"),
    Action("quit", "trigger", "stop playing"),
)
BY_NAME = {a.name: a for a in TABLE}
ALIASES = {"pause": "paused", "clip/next": "clip_next", "clip/prev": "clip_prev"}

# Keys (pyglet key names) -> (action, how, value). Up/Down are one step of the temperature, etc.
KEYS: dict[str, tuple[str, str, float | None]] = {
    "UP": ("temperature", "step", +1), "DOWN": ("temperature", "step", -1),
    "RIGHT": ("alpha", "step", +1), "LEFT": ("alpha", "step", -1),
    "BRACKETRIGHT": ("threshold", "step", +1), "BRACKETLEFT": ("threshold", "step", -1),
    "PAGEUP": ("threshold", "step", +1), "PAGEDOWN": ("threshold", "step", -1),
    "SPACE": ("freeze", "press", None), "P": ("paused", "press", None), "F": ("fullscreen", "press", None),
    "H": ("hud", "press", None), "L": ("learn", "press", None), "S": ("screenshot", "press", None),
    "T": ("tap", "press", None), "EQUAL": ("double", "press", None), "MINUS": ("half", "press", None),
    "PERIOD": ("nudge_later", "press", None), "COMMA": ("nudge_earlier", "press", None),
    "R": ("resync", "press", None), "Q": ("quit", "press", None), "ESCAPE": ("quit", "press", None),
    "N": ("clip_next", "press", None), "B": ("clip_prev", "press", None), "A": ("autopilot", "press", None),
    **{f"_{d}": ("clip", "press", d or 10) for d in range(10)},      # 1..9, and 0 for clip 10
}
KEY_HELP = ("Up/Dn tau  Lt/Rt alpha  [ ] threshold  Space freeze  P pause  F full  H hud  S shot  Q quit  |  "
            "T tap  =/- x2 /2  ,/. nudge  R resync  L midi learn  |  N/B clip  1-0 clip n  A autopilot")


def lookup(name: str) -> Action:
    name = ALIASES.get(name, name)
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}") from None


def fader_to_value(a: Action, x: float) -> float:
    """0..1 on a controller -> the knob's own units."""
    x = min(max(float(x), 0.0), 1.0)
    if a.log:
        return math.exp(math.log(a.lo) + x * (math.log(a.hi) - math.log(a.lo)))
    return a.lo + x * (a.hi - a.lo)


class Actions:
    """Performs actions on the live objects. ``learn`` is the MIDI learner (midi.py), or None.

    ``perform`` never raises on a bad value from a controller: it returns None and the caller reports
    it (once) in its own words.
    """

    def __init__(self, controls, tempo, stats=None):
        self.controls, self.tempo, self.stats = controls, tempo, stats
        self.learner = None             # set by the MIDI input when there is one
        self.bank = None                # set by the player when it plays a clip bank (bank.py)
        self.performed = 0

    def perform(self, name: str, how: str = "press", value=None):
        """Do action ``name``; returns the value it left (a number, a bool, or True for a trigger)."""
        a = lookup(name)
        c, t = self.controls, self.tempo
        self.performed += 1
        if a.kind == "param":
            if how == "set":
                v = float(value)
            elif how == "fader":
                v = fader_to_value(a, value)
            elif how in ("step", "press"):
                d = 1.0 if value is None else float(value)
                cur = t.bpm if a.name == "bpm" else getattr(c, a.name)
                v = cur * a.step ** d if a.log else cur + a.step * d
            else:
                raise ValueError(f"{a.name} cannot be used as {how!r}")
            if not math.isfinite(v):
                raise ValueError(f"{a.name} must be finite")
            return t.set_bpm(v) if a.name == "bpm" else c.set(a.name, v)
        if a.kind == "switch":
            if a.name == "learn":
                return self._learn(value if how == "set" else None)
            v = (not getattr(c, a.name)) if value is None or how == "press" else bool(float(value) != 0.0)
            v = c.set(a.name, v)
            if a.name == "fullscreen":
                c.request("fullscreen")
            return v
        # triggers
        if a.name == "tap":
            t.tap()
        elif a.name == "double":
            t.double()
        elif a.name == "half":
            t.half()
        elif a.name == "nudge_later":
            t.nudge(+1)
        elif a.name == "nudge_earlier":
            t.nudge(-1)
        elif a.name == "resync":
            t.resync()
        elif a.name in ("clip_next", "clip_prev", "clip"):
            return self._clip(a.name, value)
        elif a.name == "screenshot":
            c.request("screenshot", str(value) if value else time.strftime("livetex-%Y%m%d-%H%M%S.png"))
        elif a.name == "quit":
            c.request("quit")
        c.bump()
        return True

    def _clip(self, name: str, value):
        if name == "clip":
            try:
                n = int(float(value))
            except (TypeError, ValueError):
                raise ValueError("clip needs a clip number (1 is the first)") from None
        if self.bank is None:
            if self.stats is not None:
                self.stats.event("switching clips needs a bank: livetex play A B C, or a directory of bundles")
            return False
        j = self.bank.select(n - 1) if name == "clip" else self.bank.next(+1 if name == "clip_next" else -1)
        self.controls.bump()
        return j is not None

    def _learn(self, value) -> bool:
        if self.learner is None:
            if self.stats is not None:
                self.stats.event("MIDI learn needs a MIDI input (--midi)")
            return False
        on = (not self.learner.learning) if value is None else bool(float(value) != 0.0)
        self.learner.set_learning(on)
        self.controls.bump()
        return on

    def key(self, key_name: str):
        """A key press: performs its action, or (in MIDI learn mode) arms it for the next control moved.
        Returns None for an unbound key."""
        binding = KEYS.get(key_name)
        if binding is None:
            return None
        name, how, value = binding
        if self.learner is not None and self.learner.learning and name != "learn":
            self.learner.arm(name, how, value)
            self.controls.bump()
            return True
        return self.perform(name, how, value)
