"""`livetex demo`, the README's main-job command, end to end (fit the shipped clip, render, picture)."""

from __future__ import annotations

import subprocess
import sys

from livetex.media import probe


def test_demo_runs_with_no_argument_and_says_where_the_results_are(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "livetex", "demo", "-o", str(out), "--seconds", "8"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    for name in ("texture.mp4", "texture.json", "texture_with_music.mp4", "texture_with_music.json", "matrix.png"):
        assert (out / name).is_file(), name
        assert str((out / name).resolve()) in r.stdout or name.endswith(".json")
    plain, music = probe(str(out / "texture.mp4")), probe(str(out / "texture_with_music.mp4"))
    assert abs(plain.duration - 8.0) < 0.1 and not plain.has_audio
    assert abs(music.duration - 8.0) < 0.1 and music.has_audio
    # a second run reuses the fitted bundle
    r2 = subprocess.run([sys.executable, "-m", "livetex", "demo", "-o", str(out), "--seconds", "4"],
                        capture_output=True, text=True, timeout=900)
    assert r2.returncode == 0 and "reusing the fitted bundle" in r2.stdout
