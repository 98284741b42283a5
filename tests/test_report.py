"""``livetex eval``: every method, same length and seeds, one report (livetex/report.py).

One synthetic performance (a block striking every 0.8 s, with a click on every strike in its soundtrack)
is fitted once with a tiny model (5 training steps: the report is under test, not the model's quality)
and evaluated through the real CLI.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from livetex import walks
from livetex.media import VideoWriter

from test_vrb import click_track

FPS, P, N = 25, 20, 250


def performance(path, n=N, size=64, sr=16000):
    """The striking block with a click at every strike in its own soundtrack."""
    yy, xx = np.mgrid[0:size, 0:size]
    y = np.zeros(int(n / FPS * sr), np.float32)
    L = int(0.04 * sr)
    for s in range(P // 2, n, P):
        a = int(s / FPS * sr)
        y[a:a + L] += 0.8 * np.sin(2 * np.pi * 800 * np.arange(L) / sr) * np.exp(-np.arange(L) / (0.01 * sr))
    with VideoWriter(str(path), FPS, (size, size), audio=y, sr=sr) as w:
        for k in range(n):
            ph = (k % P) / P
            yv = 10 + 40 * (ph / 0.5) ** 2 if ph < 0.5 else 50 - 40 * (0.5 - 0.5 * np.cos(np.pi * (ph - 0.5) / 0.5))
            img = np.full((size, size, 3), 20, np.uint8)
            img[(np.abs(yy - yv) < 5) & (np.abs(xx - 32) < 10)] = 240
            w.write(img)
    return path


def table(md: str) -> list[list[str]]:
    """Body rows of the first markdown table in ``md``, as lists of cells."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert lines and lines[1].startswith("|---"), md
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, cli):
    d = tmp_path_factory.mktemp("eval")
    video = performance(d / "performance.mp4")
    song = click_track(d / "song.wav", seconds=6.0)
    out = d / "report"
    p = cli("eval", video, "--audio", song, "--seconds", "4", "--seeds", "2", "--steps", "5", "-o", out, timeout=600)
    assert p.returncode == 0, p.stderr
    return d, video, song, out, p


@pytest.fixture(scope="module")
def cli():
    from conftest import run_livetex
    return run_livetex


def test_report_has_one_row_per_method(evaluated):
    d, video, song, out, p = evaluated
    names = sorted(walks.methods())                       # with --audio every method runs
    rows = table((out / "report.md").read_text())
    assert [r[0] for r in rows] == names
    res = json.loads((out / "results.json").read_text())
    assert [m["method"] for m in res["methods"]] == names and not res["skipped"]
    assert res["info"]["seconds"] == 4 and res["info"]["seeds"] == 2 and res["info"]["bundle_from"] == "fitted"
    by = {m["method"]: m for m in res["methods"]}
    # The methods of this module produce numbers for every seed (others may report a clear error).
    for name in ("classic", "classic+", "classic++", "classic-deep", "vrb", "sequential", "random"):
        m = by[name]
        assert not m["note"].startswith("error"), (name, m["note"])
        assert [s["seed"] for s in m["per_seed"]] == [0, 1]
        assert {"jumps_per_min", "diversity", "coverage", "visible_jumps", "audio_motion"} <= set(m["mean"])
        assert 0.0 <= m["mean"]["coverage"] <= 1.0
        assert m["video"] == f"videos/{name.replace('+', 'p')}.mp4" and (out / m["video"]).stat().st_size > 1000
    # Same length for everyone: every seed-0 timeline next to the videos has 4 s of frames.
    for tl in (out / "videos").glob("*.json"):
        assert len(json.loads(tl.read_text())["frames"]) == 4 * FPS
    # The markdown table shows the means of results.json.
    row = {r[0]: r for r in rows}["classic"]
    assert row[1] == f"{by['classic']['mean']['jumps_per_min']:.1f}"
    assert "classic" in p.stdout and "report written" in p.stdout


def test_html_has_the_table_pictures_and_videos(evaluated):
    d, video, song, out, p = evaluated
    h = (out / "report.html").read_text()
    n = len(walks.methods())
    assert h.count("<tr>") == n + 1                           # header + one row per method
    videos = re.findall(r"<video src='([^']+)'", h)
    assert len(videos) >= 7 and all((out / v).exists() for v in videos)
    for png in ("timelines", "transitions", "metrics"):
        f = out / "figures" / f"{png}.png"
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000
        assert f"figures/{png}.png" in h
    assert not [x for x in out.iterdir() if x.name.startswith(".")]     # no temporary leftovers


def test_rerun_reuses_the_bundle_and_skips_music_methods(evaluated, cli):
    d, video, song, out, p = evaluated
    before = (out / "bundle" / "manifest.json").stat().st_mtime
    p = cli("eval", video, "--seconds", "3", "--seeds", "1", "--no-videos", "-o", out,
            "--methods", "classic,classic++,vrb,sequential")
    assert p.returncode == 0, p.stderr
    assert (out / "bundle" / "manifest.json").stat().st_mtime == before
    res = json.loads((out / "results.json").read_text())
    assert res["info"]["bundle_from"] == "reused"
    assert [m["method"] for m in res["methods"]] == ["classic", "classic++", "sequential"]
    assert res["skipped"] == [["vrb", "follows music: needs --audio"]]
    md = (out / "report.md").read_text()
    assert len(table(md)) == 3 and "Skipped: `vrb`" in md
    assert not (out / "videos").exists() or not list((out / "videos").glob("*.mp4"))


def test_a_bundle_directory_is_used_as_is(evaluated, tmp_path, cli):
    d, video, song, out, p = evaluated
    bundle = tmp_path / "b"
    shutil.copytree(out / "bundle", bundle)
    p = cli("eval", bundle, "--seconds", "2", "--seeds", "1", "--no-videos", "--methods", "classic", "-o", tmp_path / "r")
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["info"]["bundle_from"] == "given" and not (tmp_path / "r" / "bundle").exists()


def test_bad_input_is_a_clean_error(evaluated, tmp_path, cli, media):
    from conftest import assert_clean_error
    d, video, song, out, p = evaluated
    p = cli("eval", media.garbage, "-o", tmp_path / "r1")
    assert_clean_error(p)
    assert not (tmp_path / "r1").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.txt").write_text("mine")
    p = cli("eval", out / "bundle", "-o", other, "--methods", "classic")
    assert_clean_error(p, other, {"thesis.txt"}, match="not a livetex report directory")
    p = cli("eval", out / "bundle", "-o", tmp_path / "r2", "--audio", tmp_path / "missing.wav")
    assert_clean_error(p, match="missing.wav")
    assert not (tmp_path / "r2").exists()
    p = cli("eval", out / "bundle", "-o", tmp_path / "r3", "--methods", "nope")
    assert_clean_error(p, match="unknown method 'nope'")
    assert not (tmp_path / "r3").exists()


def test_a_crashing_method_gets_a_row_not_a_dead_report(evaluated, tmp_path, monkeypatch):
    from livetex import report
    d, video, song, out, p = evaluated

    def broken(req):
        raise RuntimeError("boom")
    monkeypatch.setitem(walks._METHODS, "broken", walks.Method("broken", broken, "always fails"))
    monkeypatch.delenv("LIVETEX_DEBUG", raising=False)
    res = report.evaluate(str(out / "bundle"), str(tmp_path / "r"), seconds=2, seeds=1, methods=["broken", "classic"],
                          videos=False, progress=False)
    rows = {r[0]: r for r in table((tmp_path / "r" / "report.md").read_text())}
    assert set(rows) == {"broken", "classic"} and res["rows"] == 2
    assert rows["broken"][-1] == "internal error: RuntimeError: boom"
    assert not rows["classic"][-1].startswith(("error", "internal"))
