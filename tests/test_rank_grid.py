"""Ranked-list pictures: junk excluded as in the evaluation, AP / first-match rank per row, green
and red frames where the ranking is known by construction, explicit row order, side by side."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from dataset_fixtures import build_market1501, train_tiny
from deploy_models import run_tool
from PIL import Image

from sfsc.evaluation.rank_grid import (
    MATCH_COLOUR,
    MISMATCH_COLOUR,
    QUERY_COLOUR,
    FeatureSet,
    GridLayout,
    rank_grid_figure,
)
from sfsc.evaluation.rank_lists import choose_queries, ranked_lists

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "visualize_ranks.py")


def _unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


# Query 0 (id 1, camera 0): gallery 0 is itself under camera 0 (junk: must not be shown), the
# best remaining item is gallery 1 of id 2 (a miss), then gallery 2 of id 1 (the only true
# match): first match at rank 2, AP 1/2. Query 1 (id 3): gallery 3 and 4 are its two true
# matches at ranks 1 and 2: AP 1.
G_PIDS, G_CAMS = np.array([1, 2, 1, 3, 3]), np.array([0, 1, 1, 1, 2])
GALLERY = np.stack([_unit(1, 0, 0, 0), _unit(0.95, 0.3, 0, 0), _unit(0.8, 0.6, 0, 0),
                    _unit(0, 0, 1, 0), _unit(0, 0, 1, 1)])
Q_PIDS, Q_CAMS = np.array([1, 3]), np.array([0, 0])
QUERY = np.stack([_unit(1, 0, 0, 0), _unit(0, 0, 1, 0)])
# Another query model under which query 0 finds its match first.
QUERY_GOOD = np.stack([_unit(0.8, 0.6, 0, 0), _unit(0, 0, 1, 0.1)])


def _images(folder, n: int, prefix: str):
    """Solid images in shades of blue: never mistaken for a green or red frame."""
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"{prefix}{i}.png")
        Image.new("RGB", (32, 64), (20 * i, 20 * i, 200)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def sets(tmp_path):
    gallery = FeatureSet(GALLERY, G_PIDS, G_CAMS, _images(tmp_path, 5, "g"))
    qpaths = _images(tmp_path, 2, "q")
    return (FeatureSet(QUERY, Q_PIDS, Q_CAMS, qpaths),
            FeatureSet(QUERY_GOOD, Q_PIDS, Q_CAMS, qpaths), gallery)


def test_lists_leave_out_junk_and_report_ap_and_first_match():
    lists = ranked_lists(QUERY, GALLERY, Q_PIDS, Q_CAMS, G_PIDS, G_CAMS, k=3)
    assert lists.indices[0].tolist() == [1, 2, 3]  # gallery 0 (same id and camera) is gone
    assert lists.same_id[0].tolist() == [False, True, False]
    assert lists.indices[1][:2].tolist() == [3, 4]
    assert lists.first_rank.tolist() == [2, 1]
    np.testing.assert_allclose(lists.ap, [0.5, 1.0])


def test_rows_follow_the_explicit_order():
    lists = ranked_lists(QUERY, GALLERY, Q_PIDS, Q_CAMS, G_PIDS, G_CAMS, k=3)
    assert choose_queries(lists, "worst", 2).tolist() == [0, 1]
    assert choose_queries(lists, "best", 2).tolist() == [1, 0]
    assert choose_queries(lists, "best", 1).tolist() == [1]
    picks = {tuple(choose_queries(lists, "random", 1, seed=s)) for s in range(20)}
    assert picks == {(0,), (1,)}  # the seed decides, and both queries can be drawn
    assert (choose_queries(lists, "random", 1, seed=7) == choose_queries(lists, "random", 1,
                                                                         seed=7)).all()
    with pytest.raises(ValueError, match="order must be one of"):
        choose_queries(lists, "first", 1)


def _pixel(image, box, where="left"):
    x0, y0, x1, y1 = box
    x = x0 + 1 if where == "left" else (x0 + x1) // 2
    return image.getpixel((x, (y0 + y1) // 2))


def test_picture_frames_matches_green_and_misses_red(sets):
    query, _, gallery = sets
    image, chosen, panels = rank_grid_figure([("q -> g", query)], gallery, order="worst",
                                             count=2, k=3)
    layout = GridLayout(rows=2, k=3, panels=1)
    assert image.size == layout.size
    assert chosen.tolist() == [0, 1]
    # row 0 = query 0: miss, match, miss; row 1 = query 1: match, match
    expected = {(0, 1): MISMATCH_COLOUR, (0, 2): MATCH_COLOUR, (0, 3): MISMATCH_COLOUR,
                (1, 1): MATCH_COLOUR, (1, 2): MATCH_COLOUR, (0, 0): QUERY_COLOUR,
                (1, 0): QUERY_COLOUR}
    for (row, col), colour in expected.items():
        assert _pixel(image, layout.frame_box(0, row, col)) == colour, (row, col)
    # inside the frame: the gallery image itself (gallery 1 in row 0, column 1)
    assert _pixel(image, layout.frame_box(0, 0, 1), "centre") == (20, 20, 200)


def test_side_by_side_shows_the_same_queries_for_two_query_models(sets):
    query, query_good, gallery = sets
    image, chosen, panels = rank_grid_figure(
        [("0.25x -> 1.0x", query), ("1.0x -> 1.0x", query_good)], gallery, order="worst",
        count=1, k=3)
    layout = GridLayout(rows=1, k=3, panels=2)
    assert image.size == layout.size and chosen.tolist() == [0]
    assert _pixel(image, layout.frame_box(0, 0, 1)) == MISMATCH_COLOUR
    assert _pixel(image, layout.frame_box(1, 0, 1)) == MATCH_COLOUR
    assert panels[1].lists.first_rank[0] == 1


def _save_npz(path, fs: FeatureSet):
    np.savez(path, feats=fs.feats, pids=fs.pids, camids=fs.camids, paths=np.array(fs.paths))


def test_cli_from_feature_files_needs_an_order(sets, tmp_path):
    query, _, gallery = sets
    _save_npz(tmp_path / "a_query.npz", query)
    _save_npz(tmp_path / "b_gallery.npz", gallery)
    base = [sys.executable, TOOL, "--query-features", str(tmp_path / "a_query.npz"),
            "--gallery-features", str(tmp_path / "b_gallery.npz"), "--topk", "3",
            "--output", str(tmp_path / "out.png")]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "projects", "SFSC"))
    missing = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2 and "--order" in missing.stderr
    proc = subprocess.run(base + ["--order", "random"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--order random: seed " in proc.stdout and "wrote" in proc.stdout
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == GridLayout(rows=2, k=3).size


def test_cli_from_a_trained_model_side_by_side(tmp_path, monkeypatch, capsys):
    root = str(tmp_path / "datasets")
    build_market1501(root)
    monkeypatch.setattr("fastreid.data.build._root", root)
    out = train_tiny("Market1501/sfsc_R18.yml", str(tmp_path / "run"))
    png = tmp_path / "grid.png"
    code = run_tool("visualize_ranks", [
        "--model-dir", out, "--query-width", "0.25", "--compare-width", "1.0",
        "--gallery-width", "1.0", "--order", "best", "--topk", "4", "--output", str(png)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "query 0.25x -> gallery 1x" in printed and "query 1x -> gallery 1x" in printed
    with Image.open(png) as img:
        # the fixture's six queries all have a true match in the gallery
        assert img.size == GridLayout(rows=6, k=4, panels=2).size
