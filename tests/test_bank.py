"""A clip bank (livetex play A B C, or BANK/): lazy opening, switches by OSC and by the autopilot with a
crossfade, a damaged clip skipped while the show goes on. Real headless players (EGL), real bundles:
clip a is the shared 64x48 25 fps bundle, clip b a 80x60 30 fps one (another size and fps, so its frames
are fitted into the output's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import synth

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def clip_b(tmp_path_factory) -> Path:
    from livetex.fit import FitConfig, fit
    d = tmp_path_factory.mktemp("bank")
    video = d / "b.mp4"
    synth.write_video(str(video), 70, 30, (80, 60))
    out = d / "b.bundle"
    fit(str(video), str(out), FitConfig(model=False), progress=False)
    return out


def _damage(src: Path, dst: Path) -> Path:
    """A copy of a bundle whose frame index is overwritten (same size): found when the clip is opened."""
    shutil.copytree(src, dst)
    f = dst / "frames_index.npy"
    f.write_bytes(b"\x00" * f.stat().st_size)
    return dst


def _free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bank_paths_and_actions():
    """BANK/ lists its subdirectories by name; a single bundle is itself; the clip actions are in the one
    table (keys N/B/digits/A, OSC /livetex/clip N and /livetex/clip/next) and need a bank."""
    from livetex.player.actions import ALIASES, KEYS, Actions, lookup
    from livetex.player.controls import Controls
    from livetex.player.stats import Stats
    from livetex.player.tempo import TempoClock
    assert KEYS["N"][0] == "clip_next" and KEYS["B"][0] == "clip_prev" and KEYS["A"][0] == "autopilot"
    assert KEYS["_1"] == ("clip", "press", 1) and KEYS["_0"] == ("clip", "press", 10)
    assert lookup(ALIASES["clip/next"]).name == "clip_next"
    st = Stats()
    acts = Actions(Controls(0.1, 0.1, 0.5), TempoClock(), st)
    assert acts.perform("clip_next") is False                       # one bundle: said, not crashed
    assert "needs a bank" in st.events[-1]["message"]
    with pytest.raises(ValueError):
        acts.perform("clip", "press", "two")
    assert acts.perform("autopilot") is True and acts.controls.autopilot


def test_bank_switches_by_osc_and_skips_a_damaged_clip(small_bundle, clip_b, tmp_path):
    """Clip 3 (damaged) asked by OSC: one clear line, the show stays on clip 1. Then /livetex/clip/next
    crossfades to clip 2: the frames shown are clip 1's, then 12 crossfade frames, then clip 2's (its own
    walk, fitted pixel-exactly into the output's size)."""
    import cv2
    from pythonosc.udp_client import SimpleUDPClient

    from livetex.bundle import load_bundle
    bank = tmp_path / "bank"
    bank.mkdir()
    os.symlink(small_bundle, bank / "1-a")
    os.symlink(clip_b, bank / "2-b")
    _damage(small_bundle, bank / "3-broken")
    stats_p, shot = tmp_path / "s.json", tmp_path / "shot.png"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "LIVETEX_DEBUG"}
    p = subprocess.Popen([sys.executable, "-m", "livetex", "play", str(bank), "--headless", "--duration", "6",
                          "--stats", str(stats_p), "--screenshot", str(shot), "--osc", str(port), "--osc-host",
                          "127.0.0.1", "--interpolate", "none", "--seed", "2"],
                         env=env, cwd=str(REPO), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    try:
        for line in p.stderr:
            lines.append(line)
            if "clip bank: 3 clips" in line:
                break
        reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
        reader.start()
        cl = SimpleUDPClient("127.0.0.1", port)
        time.sleep(1.5)
        cl.send_message("/livetex/clip", 3)
        time.sleep(1.0)
        cl.send_message("/livetex/clip/next", [])
        p.wait(60)
        reader.join(5)
    finally:
        if p.poll() is None:
            p.kill()
    err = "".join(lines)
    assert p.returncode == 0, err
    broken = [ln for ln in err.splitlines() if "3-broken" in ln]
    assert len(broken) == 1 and "skipped" in broken[0] and "damaged bundle" in broken[0], err
    s = json.loads(stats_p.read_text())
    bk = s["bank"]
    assert bk["bad"] == [2] and bk["skipped"][0]["clip"] == 2
    assert any("3-broken" in e["message"] for e in s["events"])
    assert [(w["from"], w["to"]) for w in bk["switches"]] == [(0, 1)], bk
    assert bk["opened"] == 3                       # 1-a at start, 3-broken tried, 2-b
    fps = 25.0
    assert s["fps_shown"] == pytest.approx(fps, rel=0.02)
    assert s["dropped"] <= 0.03 * 6 * fps, s["dropped"]
    clips, srcs = s["shown_clips"], s["shown_source_frames"]
    first = clips.index(1)
    assert set(clips[:first]) == {0} and set(clips[first:]) == {1}
    fade = bk["switches"][0]["frames"]
    assert fade == 12 and all(x == -1 for x in srcs[first:first + fade])       # the crossfade
    assert all(x >= 0 for x in srcs[first + fade:])
    msgs = [e["message"] for e in s["events"]]
    said = [i for i, m in enumerate(msgs) if "3-broken" in m or m.startswith("clip 2/3: 2-b")]
    assert len(said) == 2 and "3-broken" in msgs[said[0]]    # refused first, then the switch
    # the decisions of clip 2 are its own walk's, on its own timeline
    assert {d["clip"] for d in s["decisions_log"]} == {0, 1}
    b = load_bundle(clip_b)
    info = s["screenshot"]
    img = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    assert img.shape == (48, 64, 3) and info["source_frame"] >= 0
    want = cv2.resize(b.store.frame(info["source_frame"]), (64, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(img, want)


def test_bank_of_50_starts_lazily_and_the_autopilot_moves_on_the_bar(small_bundle, clip_b, tmp_path,
                                                                     monkeypatch):
    """50 clips (one with an unreadable manifest): only the first bundle is opened before the clock
    starts, the bad one is said at start and skipped, and the autopilot (1 bar at 120 bpm) crossfades to
    the next clip on every bar, with seams on and no frame dropped."""
    import livetex.bundle
    from livetex.player.app import PlayConfig, play
    bank = tmp_path / "bank"
    bank.mkdir()
    os.symlink(small_bundle, bank / "clip-00")
    shutil.copytree(small_bundle, bank / "clip-01")
    (bank / "clip-01" / "manifest.json").write_text("{ not json")
    os.symlink(clip_b, bank / "clip-02")
    for i in range(3, 50):
        os.symlink(small_bundle if i % 2 else clip_b, bank / f"clip-{i:02d}")
    opened: list[float] = []
    real = livetex.bundle.Bundle.__init__

    def counting(self, *a, **k):
        opened.append(time.perf_counter())
        real(self, *a, **k)
    monkeypatch.setattr(livetex.bundle.Bundle, "__init__", counting)
    t0 = time.perf_counter()
    s = play(PlayConfig(bundle=str(bank), headless=True, duration=7.0, autopilot=1, bpm=120.0, seed=4,
                        stats=str(tmp_path / "s.json")))
    start = t0 + s["startup_s"]
    assert sum(t <= start for t in opened) == 1, (opened, start)
    assert s["startup_s"] < 10.0
    bk = s["bank"]
    assert len(bk["clips"]) == 50 and 1 in bk["bad"]
    assert any("clip 2 (clip-01) skipped" in e["message"] for e in s["events"])
    sw = bk["switches"]
    assert len(sw) >= 2, bk
    assert [(w["from"], w["to"]) for w in sw[:2]] == [(0, 2), (2, 3)]
    for w in sw:
        assert w["autopilot"] and not w["late"]
        assert abs(w["beat"] - 4 * round(w["beat"] / 4)) < 0.15, w          # on a bar
    gaps = np.diff([w["t"] for w in sw])
    assert np.allclose(gaps, 2.0, atol=0.1), gaps                            # one bar at 120 bpm
    assert s["dropped"] <= 0.03 * 7 * 25, s["dropped"]
    assert bk["opened"] <= 2 + len(sw) + 1       # lazily: the first, the switched-to ones, one prepared ahead
    clips = s["shown_clips"]
    assert [c for i, c in enumerate(clips) if i == 0 or clips[i - 1] != c][:3] == [0, 2, 3]
