"""Shared fixtures: synthetic media, the real clips in ../shared/media, a small fitted bundle, CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import synth

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("LIVETEX_MEDIA", REPO.parent / "shared" / "media"))


# ------------------------------------------------------------------------------------------ real media
@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The real test clips (../shared/media, or $LIVETEX_MEDIA); skips the test when they are absent."""
    if not (MEDIA / "piano_solo_01.avi").is_file():
        pytest.skip(f"real media not found at {MEDIA} (set LIVETEX_MEDIA to the folder with piano_solo_01.avi)")
    return MEDIA


# ------------------------------------------------------------------------------------- synthetic media
class SynthMedia:
    """Synthetic test files, written on first use into one session directory and reused."""

    FPS = 25
    SIZE = (64, 48)
    N = 100                          # 4 s at 25 fps
    CLICKS = (1.0, 2.0)              # seconds where the soundtrack of ``av`` has a noise burst

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, Path] = {}
        self.vfr_times: np.ndarray | None = None

    def _make(self, name: str, fn) -> Path:
        if name not in self._cache:
            p = self.root / name
            fn(str(p))
            self._cache[name] = p
        return self._cache[name]

    # videos -------------------------------------------------------------------------------------
    @property
    def av(self) -> Path:
        """4 s, 25 fps, 64x48 H.264 mp4 with a 16 kHz mono AAC track: bursts at CLICKS."""
        sr = 16000
        return self._make("av.mp4", lambda p: synth.write_video(
            p, self.N, self.FPS, self.SIZE, audio=synth.clicks(self.N / self.FPS, sr, self.CLICKS), sr=sr))

    @property
    def av_short(self) -> Path:
        """Like ``av`` but 2.6 s (65 frames, 11 segments): small enough that fitting it stays instant."""
        sr = 16000
        return self._make("av_short.mp4", lambda p: synth.write_video(
            p, 65, self.FPS, self.SIZE, audio=synth.clicks(65 / self.FPS, sr, self.CLICKS), sr=sr))

    @property
    def silent(self) -> Path:
        """Same picture, no audio stream, index (moov) at the end of the file."""
        return self._make("silent.mp4", lambda p: synth.write_video(p, self.N, self.FPS, self.SIZE, faststart=False))

    @property
    def avi(self) -> Path:
        """AVI (decode-order timestamps) at 30 fps with an mp3 track."""
        return self._make("clip.avi", lambda p: synth.write_video(
            p, 60, 30, self.SIZE, audio=synth.tone(2.0, 44100, 2), sr=44100))

    @property
    def ntsc(self) -> Path:
        """29.97 fps (30000/1001) mp4."""
        return self._make("ntsc.mp4", lambda p: synth.write_video(p, 60, Fraction(30000, 1001), self.SIZE))

    @property
    def odd(self) -> Path:
        """161x121 H.264 4:4:4 mp4 (odd sizes are legal outside 4:2:0)."""
        return self._make("odd.mp4", lambda p: synth.write_video(p, 30, self.FPS, (161, 121), pix_fmt="yuv444p"))

    @property
    def odd_mkv(self) -> Path:
        """161x121 lossless FFV1 in Matroska."""
        return self._make("odd.mkv", lambda p: synth.write_video(p, 30, self.FPS, (161, 121), codec="ffv1", pix_fmt="bgr0"))

    @property
    def vfr(self) -> Path:
        """Variable-frame-rate mkv (frame durations 17..83 ms); times in ``self.vfr_times``."""
        def make(p):
            self.vfr_times = synth.write_vfr(p, 60)[1]
        return self._make("vfr.mkv", make)

    @property
    def short(self) -> Path:
        """5 frames (0.2 s): shorter than one 0.5 s window."""
        return self._make("short.mp4", lambda p: synth.write_video(p, 5, self.FPS, self.SIZE))

    @property
    def truncated(self) -> Path:
        """The first half of a faststart mp4: the index is intact, half the frames are missing."""
        return self._make("truncated.mp4", lambda p: synth.truncate(str(self.av), p, 0.5))

    @property
    def truncated_nofaststart(self) -> Path:
        """The first half of an mp4 whose index (moov) was at the end: no index at all."""
        return self._make("truncated_ns.mp4", lambda p: synth.truncate(str(self.silent), p, 0.5))

    @property
    def garbage(self) -> Path:
        """Random bytes named .mp4."""
        return self._make("garbage.mp4", lambda p: synth.random_bytes(p))

    @property
    def text(self) -> Path:
        return self._make("notes.mp4", lambda p: Path(p).write_text("not a video\n" * 50))

    @property
    def audio_only(self) -> Path:
        """An mp4 holding only an AAC audio stream."""
        return self._make("audio_only.mp4", lambda p: synth.write_audio(p, 44100, 2, 2.0))

    def audio(self, sr: int, channels: int, ext: str = ".wav", seconds: float = 1.0) -> Path:
        """A tone at ``sr`` Hz with ``channels`` channels (1, 2 or 6 = 5.1)."""
        return self._make(f"tone_{sr}_{channels}{ext}", lambda p: synth.write_audio(p, sr, channels, seconds))


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> SynthMedia:
    return SynthMedia(tmp_path_factory.mktemp("synth"))


# ---------------------------------------------------------------------------------------------- bundles
# Bundles are fitted from clips of fewer than 12 segments: below that the audio step trains no
# audio-visual model (livetex.audio.avmodel.MIN_SEGMENTS), so a --no-model fit takes well under a second.
@pytest.fixture(scope="session")
def small_bundle(media, tmp_path_factory) -> Path:
    """A bundle fitted with --no-model (jpeg frame store + thumbs + audio) from the 2.6 s ``av_short`` clip.

    Session-scoped and shared: tests must not modify it (copy it first).
    """
    from livetex.fit import FitConfig, fit
    out = tmp_path_factory.mktemp("bundles") / "small"
    fit(str(media.av_short), str(out), FitConfig(model=False), progress=False)
    return out


@pytest.fixture(scope="session")
def raw_bundle(media, tmp_path_factory) -> Path:
    """Like ``small_bundle`` but with the lossless raw frame store."""
    from livetex.fit import FitConfig, fit
    out = tmp_path_factory.mktemp("bundles") / "raw"
    fit(str(media.av_short), str(out), FitConfig(model=False, store_codec="raw"), progress=False)
    return out


# ---------------------------------------------------------------------------------------- places to write
def _refuses_writes(d: str) -> bool:
    probe = os.path.join(d, f".livetex-ro-probe-{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
    except OSError:
        pass
    else:
        os.remove(probe)
        return False
    try:
        os.mkdir(probe)
    except OSError:
        return True
    os.rmdir(probe)
    return False


@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """An existing directory where neither files nor directories can be created.

    A chmod 555 directory for ordinary users; root ignores permission bits, so then a sysfs
    directory (which refuses new entries even to root). Verified to refuse before it is handed out.
    """
    d = tmp_path / "readonly"
    d.mkdir()
    d.chmod(0o555)
    try:
        if _refuses_writes(str(d)):
            yield d
            return
        for cand in ("/sys/kernel", "/sys", "/proc/self", "/proc"):
            if os.path.isdir(cand) and _refuses_writes(cand):
                yield Path(cand)
                return
        pytest.skip("found no directory that refuses writes (running as root without sysfs/procfs?)")
    finally:
        d.chmod(0o755)


# ------------------------------------------------------------------------------------------------- CLI
def run_livetex(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``python -m livetex ARGS`` as a user would; returns the finished process (text output)."""
    env = {k: v for k, v in os.environ.items() if k != "LIVETEX_DEBUG"}
    return subprocess.run([sys.executable, "-m", "livetex", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def dir_listing(d) -> set[str]:
    """Every entry (hidden ones included) directly inside ``d``."""
    return set(os.listdir(d)) if os.path.isdir(d) else set()


def assert_clean_error(proc: subprocess.CompletedProcess, outdir=None, before: set[str] | None = None,
                       match: str | None = None) -> str:
    """A bad-input failure as the guide demands: non-zero exit, last stderr line ``livetex: error: ...``,
    no traceback, and nothing new left in ``outdir`` (compared with ``before``). Returns that line."""
    err = proc.stderr.strip()
    assert proc.returncode != 0, f"expected failure, got exit 0\nstdout: {proc.stdout}\nstderr: {err}"
    assert "Traceback" not in err, err
    last = err.splitlines()[-1] if err else ""
    assert last.startswith("livetex: error:"), f"last stderr line is not a livetex error: {err!r}"
    if match is not None:
        assert match.lower() in last.lower(), f"{match!r} not in {last!r}"
    if outdir is not None:
        left = dir_listing(outdir) - (before or set())
        assert not left, f"failed run left files behind in {outdir}: {sorted(left)}"
    return last


@pytest.fixture
def cli():
    return run_livetex
