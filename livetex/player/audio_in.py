"""Audio in and out with sounddevice (PortAudio): the microphone ring buffer and the song player.

- :class:`AudioRing` holds the latest seconds of microphone samples and when each block arrived, so
  the scheduler can take "the last window" and measure how old the audio behind a decision was.
- :class:`MicInput` feeds the ring from an ``InputStream`` callback and watches the stream: if the
  device disappears or stalls it says so once, the player goes on unconditional, and it retries the
  device every few seconds.
- :class:`FilePlayer` plays a song through an ``OutputStream``; its playback position is the player's
  master clock (what the audience hears is what the picture follows).

The callbacks run on PortAudio's thread: they copy samples and bump counters, nothing else.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from ..errors import LivetexError

STALL_S = 0.5          # no microphone block for this long: the mic is lost
OPEN_GRACE_S = 3.0     # a (re)opened stream may take this long to deliver its first block (PulseAudio: ~1 s)
RETRY_S = 2.0          # then try to reopen it this often
BLOCK_S = 0.02         # microphone block: 20 ms, a small part of a stride


def _sd():
    try:
        import sounddevice as sd
    except OSError as e:   # the PortAudio shared library is missing
        raise LivetexError(f"audio is unavailable: {e} (install libportaudio2)") from None
    return sd


# ------------------------------------------------------------------------------------------ devices
def devices() -> list[dict]:
    """Every PortAudio device: index, name, host API, input/output channels, default rate."""
    sd = _sd()
    try:
        devs = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as e:  # PortAudio cannot even enumerate
        raise LivetexError(f"cannot list audio devices: {e}") from None
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
             "rate": d["default_samplerate"]} for i, d in enumerate(devs)]


def describe_devices(kind: str | None = None) -> str:
    """Human-readable device list (``kind``: 'input', 'output' or None for all)."""
    ds = [d for d in devices() if kind is None or d["inputs" if kind == "input" else "outputs"] > 0]
    if not ds:
        return "none"
    return "; ".join(f"{d['index']} {d['name']!r} ({d['hostapi']}, {d['inputs']} in, {d['outputs']} out)" for d in ds)


def device_table() -> str:
    """Every device on its own line, defaults marked (``livetex play --list-devices``)."""
    ds = devices()
    if not ds:
        return "no audio devices found (no sound card, or no PulseAudio/ALSA server running)"
    sd = _sd()
    din, dout = sd.default.device
    lines = []
    for d in ds:
        mark = [k for k, i in (("default input", din), ("default output", dout)) if i == d["index"]]
        lines.append(f"{d['index']:3d}  {d['name']}  ({d['hostapi']}, {d['inputs']} in, {d['outputs']} out, "
                     f"{d['rate']:g} Hz){'  <- ' + ', '.join(mark) if mark else ''}")
    return "\n".join(lines)


def find_device(name: str | None, kind: str) -> int:
    """Index of the ``kind`` ('input' or 'output') device called ``name`` (exact, then part of the
    name, case-insensitive; or an index). None: the system default. LivetexError listing the devices
    of that kind if there is no match."""
    sd = _sd()
    key = "inputs" if kind == "input" else "outputs"
    ds = [d for d in devices() if d[key] > 0]
    if not ds:
        raise LivetexError(f"no audio {kind} device found (no sound card, or no PulseAudio/ALSA server running); "
                           f"devices: {describe_devices()}")
    if name is None:
        default = sd.default.device[0 if kind == "input" else 1]
        if default is not None and default >= 0 and any(d["index"] == default for d in ds):
            return int(default)
        return ds[0]["index"]
    if name.strip().isdigit():
        i = int(name)
        if any(d["index"] == i for d in ds):
            return i
    else:
        low = name.lower()
        for match in (lambda d: d["name"].lower() == low, lambda d: low in d["name"].lower()):
            hits = [d for d in ds if match(d)]
            if hits:
                return hits[0]["index"]
    raise LivetexError(f"no audio {kind} device matching {name!r}; {kind} devices: {describe_devices(kind)}")


# --------------------------------------------------------------------------------------------- ring
class AudioRing:
    """The latest ``capacity`` mono float32 samples, plus the arrival time of every block.

    ``total`` counts every sample ever written, so a reader can tell new audio from old by position.
    """

    def __init__(self, capacity: int, sr: int):
        self.buf = np.zeros(int(capacity), np.float32)
        self.sr = int(sr)
        self.total = 0
        self.lock = threading.Lock()
        self.arrivals: deque = deque(maxlen=4096)   # (end position, perf_counter at arrival)

    def write(self, x: np.ndarray, t: float) -> None:
        n = len(x)
        cap = len(self.buf)
        with self.lock:
            keep = x[-cap:] if n > cap else x          # only the newest ``cap`` samples can be kept
            m = len(keep)
            start = (self.total + n - m) % cap
            first = min(m, cap - start)
            self.buf[start:start + first] = keep[:first]
            self.buf[:m - first] = keep[first:]
            self.total += n
            self.arrivals.append((self.total, t))

    def latest(self, n: int) -> tuple[np.ndarray, int]:
        """The last ``n`` samples (zero-padded at the front if fewer were written) and the position
        just after them."""
        cap = len(self.buf)
        n = min(int(n), cap)
        with self.lock:
            end = self.total
            idx = (np.arange(end - n, end)) % cap
            out = self.buf[idx]
        have = min(n, end)
        if have < n:
            out[:n - have] = 0.0
        return out, end

    def since(self, pos: int) -> tuple[np.ndarray, int, int]:
        """Samples from position ``pos`` to now: ``(samples, start, end)``; ``start > pos`` if part of
        them was already overwritten."""
        cap = len(self.buf)
        with self.lock:
            end = self.total
            start = min(max(int(pos), end - cap, 0), end)
            out = self.buf[np.arange(start, end) % cap]
        return out, start, end

    def take_arrivals(self, upto: int) -> list[float]:
        """Arrival times of the blocks that end at or before position ``upto`` (each returned once)."""
        out = []
        with self.lock:
            while self.arrivals and self.arrivals[0][0] <= upto:
                out.append(self.arrivals.popleft()[1])
        return out


# ------------------------------------------------------------------------------------- microphone
class MicInput:
    """A microphone feeding an :class:`AudioRing`; survives the device going away.

    ``sr`` is the rate asked for (the conditioner's); if the device refuses it, its default rate is
    used and ``self.sr`` says which (the scheduler resamples).
    """

    def __init__(self, device: str | None, sr: int, seconds: float = 4.0, stats=None, wake: threading.Event | None = None):
        self.sd = _sd()
        self.device_name = device
        self.device = find_device(device, "input")
        self.info = self.sd.query_devices(self.device)
        self.sr = self._pick_rate(int(sr))
        self.ring = AudioRing(int(seconds * self.sr), self.sr)
        self.stats = stats
        self.wake = wake or threading.Event()
        self.stream = None
        self.last_t = 0.0
        self.opened_t = 0.0
        self.opened_pos = 0
        self.lost = False
        self._last_retry = 0.0
        self._reopening = False
        self._overruns_said = 0
        self._overrun_t = -1e9
        self.channels = 1

    def _pick_rate(self, sr: int) -> int:
        for rate in (sr, int(self.info["default_samplerate"])):
            try:
                self.sd.check_input_settings(self.device, channels=1, samplerate=rate, dtype="float32")
                return rate
            except Exception:
                continue
        return int(self.info["default_samplerate"])

    def _callback(self, indata, frames, time_info, status) -> None:
        t = time.perf_counter()
        x = indata[:, 0] if indata.shape[1] == 1 else indata.mean(axis=1)
        self.ring.write(x, t)
        self.last_t = t
        if self.stats is not None:
            self.stats.audio_blocks += 1          # single writer (this callback): no lock needed
            self.stats.audio_samples += frames
            if status.input_overflow:
                self.stats.overruns += 1
        self.wake.set()

    def open(self) -> None:
        """Open and start the stream; LivetexError (with the device list) if the device cannot be used."""
        self.opened_t = time.perf_counter()
        self.opened_pos = self.ring.total          # where this stream's samples start in the ring
        try:
            self.stream = self.sd.InputStream(device=self.device, channels=self.channels, samplerate=self.sr,
                                              blocksize=max(1, int(BLOCK_S * self.sr)), dtype="float32",
                                              latency="low", callback=self._callback)
            self.stream.start()
        except Exception as e:
            self.stream = None
            raise LivetexError(f"cannot open audio input {self.info['name']!r}: {e}; input devices: "
                               f"{describe_devices('input')}") from None

    def alive(self) -> bool:
        """Blocks are arriving from the current stream."""
        if self.stream is None or self.last_t <= self.opened_t:
            return False
        return time.perf_counter() - self.last_t < STALL_S

    def _stalled(self, now: float) -> bool:
        if self.stream is None:
            return True
        if self.last_t <= self.opened_t:                 # nothing yet from this stream: be patient
            return now - self.opened_t > OPEN_GRACE_S
        return now - self.last_t > STALL_S

    def check(self) -> bool:
        """Watchdog, called a few times a second: report loss and recovery once each, retry a lost
        device every few seconds. Returns whether the audio is live right now."""
        now = time.perf_counter()
        ok = self.alive()
        if ok and self.lost:
            self.lost = False
            if self.stats:
                self.stats.event("microphone is back: following the audio again")
        elif not ok and not self.lost and self._stalled(now):
            self.lost = True
            if self.stats:
                self.stats.event(f"microphone lost (no audio for {STALL_S:g} s): playing unconditional "
                                 "until it comes back")
        if self.stats is not None and self.stats.overruns > self._overruns_said and now - self._overrun_t > 5.0:
            self._overruns_said, self._overrun_t = self.stats.overruns, now
            self.stats.event(f"microphone overrun: audio was lost ({self.stats.overruns} blocks so far; the "
                             "machine is too busy); playing on")
        if (self.lost and not self._reopening and now - self._last_retry > RETRY_S
                and self._stalled(now)):
            self._last_retry = now
            self._reopening = True
            threading.Thread(target=self._reopen, name="livetex-mic-reopen", daemon=True).start()
        return ok

    def _reopen(self) -> None:
        # Opening can block for a while on a dying server: never on the scheduler's thread.
        try:
            self._close_stream()
            try:
                self.sd._terminate()
                self.sd._initialize()          # re-scan: the device may have come back under a new index
                self.device = find_device(self.device_name, "input")
            except Exception:
                return
            try:
                self.open()
            except LivetexError:
                pass
        finally:
            self._reopening = False

    def _close_stream(self) -> None:
        s, self.stream = self.stream, None
        _close(s)

    def close(self) -> None:
        self._close_stream()


def _close(stream) -> None:
    """Stop and close a sounddevice stream, whatever state a failing device left it in."""
    if stream is not None:
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        except Exception:
            pass


# ------------------------------------------------------------------------------------------- song
class FilePlayer:
    """Plays an audio file; :meth:`now` (seconds of the file heard so far) is the master clock."""

    def __init__(self, path: str, device: str | None = None, stats=None):
        from ..media.audio import load_audio
        self.sd = _sd()
        self.path = path
        self.stats = stats
        self.device = find_device(device, "output")
        info = self.sd.query_devices(self.device)
        self.device_name = info["name"]
        self.sr = int(info["default_samplerate"])
        self.channels = 2 if info["max_output_channels"] >= 2 else 1
        y = load_audio(path, self.sr, channels=self.channels)
        self.y = np.ascontiguousarray(y.reshape(len(y), -1), np.float32)
        self.duration = len(self.y) / self.sr
        self.pos = 0                    # next sample to hand to PortAudio
        self.paused = False
        self.underruns = 0
        self._anchor = None             # (position, perf_counter, latency) of the last callback
        self._end = 0                   # position after the samples queued so far
        self._last = 0.0
        self._frozen = None
        self.lock = threading.Lock()
        self.stream = None

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        if self.stats is not None:
            self.stats.audio_blocks += 1
            self.stats.audio_samples += frames
        if self.paused:
            outdata.fill(0)
            return
        pos = self.pos
        chunk = self.y[pos:pos + frames]
        n = len(chunk)
        outdata[:n] = chunk
        outdata[n:] = 0
        lat = time_info.outputBufferDacTime - time_info.currentTime
        if not 0.0 < lat < 2.0:          # some backends leave the DAC time at 0
            lat = self.stream.latency if self.stream is not None else 0.0
        with self.lock:
            self._anchor = (pos, time.perf_counter(), lat)
            self._end = pos + frames
        self.pos = pos + frames

    def start(self) -> None:
        try:
            # Big blocks and a roomy buffer: the clock compensates the output latency, so a safe
            # buffer costs no sync, while an underrun would be heard.
            self.stream = self.sd.OutputStream(device=self.device, channels=self.channels, samplerate=self.sr,
                                               dtype="float32", blocksize=1024, latency=0.1,
                                               callback=self._callback)
            self.stream.start()
        except Exception as e:
            self.stream = None
            raise LivetexError(f"cannot open audio output {self.device}: {e}; output devices: "
                               f"{describe_devices('output')}") from None

    def now(self) -> float:
        """Seconds of the file the audience has heard (monotonic; frozen while paused)."""
        if self._frozen is not None:
            return self._frozen
        with self.lock:
            a, end = self._anchor, self._end
        if a is None:                            # not started, or just resumed: hold
            return self._last
        pos, t, lat = a
        est = pos / self.sr + (time.perf_counter() - t) - lat
        # Never ahead of what was handed to PortAudio (a stalled device stops the clock). The bound
        # is not end - latency: backends call back in bursts, and that bound would make the clock stutter.
        est = min(est, end / self.sr)
        est = max(est, self._last, 0.0)
        self._last = est
        return est

    def set_paused(self, p: bool) -> None:
        if p and not self.paused:
            self._frozen = self.now()
            self.paused = True
        elif not p and self.paused:
            self.paused = False
            with self.lock:
                self._anchor = None
            self._last = self._frozen
            self._frozen = None

    @property
    def finished(self) -> bool:
        return self.now() >= self.duration

    def close(self) -> None:
        s, self.stream = self.stream, None
        _close(s)


# -------------------------------------------------------------------------------------------- clock
class WallClock:
    """Seconds since :meth:`start` on ``perf_counter``, pausable: the master clock without a song."""

    def __init__(self):
        self._base = 0.0
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def now(self) -> float:
        if self._t0 is None:
            return self._base
        return self._base + time.perf_counter() - self._t0

    def set_paused(self, p: bool) -> None:
        if p and self._t0 is not None:
            self._base = self.now()
            self._t0 = None
        elif not p and self._t0 is None:
            self._t0 = time.perf_counter()


# --------------------------------------------------------------------------------------------- taps
class MicTap:
    """New microphone samples since the last read, for a reader beside the scheduler (--osc-out,
    --record); each reader has its own tap."""

    def __init__(self, mic):
        self.mic, self.sr = mic, mic.ring.sr
        self.pos = mic.ring.total

    def sync(self) -> None:
        """Start from now (the recording starts with the clock)."""
        self.pos = self.mic.ring.total

    def read(self) -> np.ndarray:
        x, start, end = self.mic.ring.since(self.pos)
        self.pos = end
        return x


class SongTap:
    """The song's samples (mono) up to what the clock says has been heard, since the last read."""

    def __init__(self, player):
        self.player, self.sr = player, player.sr
        self.pos = 0

    def sync(self) -> None:
        self.pos = min(int(self.player.now() * self.sr), len(self.player.y))

    def read(self) -> np.ndarray:
        end = min(int(self.player.now() * self.sr), len(self.player.y))
        if end <= self.pos:
            return np.zeros(0, np.float32)
        x = self.player.y[self.pos:end].mean(axis=1)
        self.pos = end
        return x
