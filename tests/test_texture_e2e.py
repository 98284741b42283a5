"""End to end on a real large-motion clip: fit a dancer, render a texture with the default settings,
decode it back and check the texture's health (skipped cleanly where ../shared/media is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_fit_and_render_a_dancer_who_never_stands_still(media_dir, tmp_path, cli):
    clip = media_dir / "dance_kpop_cover_01.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    bdir = tmp_path / "kpop"
    r = cli("fit", clip, "-o", bdir, "--store-height", "360", timeout=600)
    assert r.returncode == 0, r.stderr
    from livetex.bundle import load_bundle
    from livetex.graph import Graph
    b = load_bundle(bdir)
    g = Graph.from_bundle(b)
    assert b.manifest["graph"]["schema"] == 1 and g.alive.mean() > 0.9
    assert (g.exits[g.alive] >= 0).any(axis=1).mean() > 0.95          # exits everywhere
    assert b.manifest["walk"]["texture"]["rate"] > 0
    out = tmp_path / "t.mp4"
    r = cli("render", bdir, "-o", out, "--seconds", "30", "--seed", "1", timeout=900)
    assert r.returncode == 0, r.stderr
    tl = json.loads((tmp_path / "t.json").read_text())
    assert len(tl["frames"]) == int(round(30 * b.fps))
    assert tl["params"]["interpolate"] in ("rife", "flow")
    r = cli("eval-timeline", tmp_path / "t.json", "--json", "--sheet", tmp_path / "sheet.png", timeout=600)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    # a 30 s texture of an 8 s clip: nearly all of it shown, rarely the same stretch twice in a row
    assert m["coverage"] > 0.8 and m["reshown"] < 0.3, m
    assert 6 <= m["jumps_per_min"] <= 40 and m["landing_tenths"] >= 5, m
    assert 0.0 <= m["visible_after"] <= 1.0 and 0.0 <= m["ghosted_seams"] <= 1.0
    assert (tmp_path / "sheet.png").stat().st_size > 10000
    # every cut is one of the graph's exits
    f = np.asarray(tl["frames"])
    for j in tl["jumps"]:
        assert f[j] in g.exits[f[j - 1]]
