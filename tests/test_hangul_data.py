"""The font-rendered ReID generator (HangulReID's) on a set every machine can render: digits and
Latin letters in matplotlib's DejaVu fonts (GlyphReIDTiny). Determinism, Market-1501 layout and
splits, the manifest and the header run records carry, FastReID loading, regeneration when a
font changes, the error that says how to install missing fonts, and the sample sheet."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import defaultdict

import pytest
from PIL import Image
from test_synthetic_data import SUBSETS, _hashes

import sfsc
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.market1501 import Market1501
from sfsc.data import (
    GLYPH_REID_TINY,
    DatasetError,
    FontsMissingError,
    GlyphReIDTiny,
    HangulReID,
    generate_hangul_reid,
    parse_name,
    synthetic_header,
)
from sfsc.data.generated import read_manifest
from sfsc.data.hangul_fonts import BUNDLED_FONT_ROOT, drawn_characters, resolve_fonts
from sfsc.data.sample_sheet import choose_sheet, sample_sheet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The install line benchmarks/HangulReID/README.md gives: Debian's Korean-only font packages.
APT_LINE = ("apt-get install -y fonts-nanum fonts-nanum-extra fonts-nanum-eco fonts-unfonts-core "
            "fonts-unfonts-extra fonts-baekmuk fonts-alee fonts-lexi-gulim fonts-lexi-saebom "
            "fonts-naver-d2coding fonts-woowa-bm")


def _fonts():
    return resolve_fonts(GLYPH_REID_TINY.font_families, (BUNDLED_FONT_ROOT,), (), "test set")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> GlyphReIDTiny:
    return DATASET_REGISTRY.get("GlyphReIDTiny")(root=str(tmp_path_factory.mktemp("datasets")))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    fonts = _fonts()
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_hangul_reid(str(tmp_path / name), GLYPH_REID_TINY, seed, fonts)
    a, b, c = (_hashes(str(tmp_path / x)) for x in "abc")
    assert a == b and len(a) == sum(read_manifest(str(tmp_path / "a"))["counts"].values())
    assert set(a.values()).isdisjoint(c.values())


def test_market1501_layout_and_names(tiny):
    root = tiny.dataset_dir
    assert os.path.basename(root) == "GlyphReIDTiny"
    assert sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) == \
        sorted(SUBSETS)
    for sub in SUBSETS:
        for name in os.listdir(os.path.join(root, sub)):
            pid, cam, seq, frame, box = parse_name(name)
            assert 1 <= cam <= 6 and 1 <= seq <= 6 and box == 1
    # FastReID's own Market-1501 parser reads the same pids and cameras.
    for items, sub, is_train in ((tiny.train, "bounding_box_train", True),
                                 (tiny.query, "query", False),
                                 (tiny.gallery, "bounding_box_test", False)):
        assert sorted(items) == sorted(Market1501.process_dir(tiny, os.path.join(root, sub),
                                                              is_train=is_train))
    path, pid, camid = tiny.train[0]
    assert pid.startswith("glyphreidtiny_") and camid.startswith("glyphreidtiny_")
    img = Image.open(path)
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (32, 32)


def test_splits_counts_and_cross_camera_matches(tiny):
    p = GLYPH_REID_TINY
    manifest = read_manifest(tiny.dataset_dir)
    identities = {int(pid): ch for pid, ch in manifest["identities"].items()}
    train = defaultdict(list)
    for _, pid, camid in tiny.train:
        train[int(pid.split("_")[1])].append(camid)
    query_pids = {pid for _, pid, _ in tiny.query}
    gallery_pids = {pid for _, pid, _ in tiny.gallery}
    assert len(train) == p.num_train_ids and len(query_pids) == p.num_test_ids
    assert set(identities) == set(train) | query_pids
    assert set(train).isdisjoint(gallery_pids | query_pids)
    assert gallery_pids == query_pids | {0}
    # Identities are distinct characters of the requested ranges.
    assert len(set(identities.values())) == len(identities)
    assert all(any(lo <= ord(ch) <= hi for lo, hi in p.characters) for ch in identities.values())
    for cams in train.values():
        assert p.train_images_per_id[0] <= len(cams) <= p.train_images_per_id[1]
        assert p.cameras_per_id[0] <= len(set(cams)) <= p.cameras_per_id[1]
    gallery_cams = defaultdict(list)
    for _, pid, camid in tiny.gallery:
        gallery_cams[pid].append(camid)
    assert len(gallery_cams.pop(0)) == p.num_distractors
    query_cams = defaultdict(list)
    for _, pid, camid in tiny.query:
        query_cams[pid].append(camid)
        assert set(gallery_cams[pid]) - {camid}, f"query of pid {pid}: no other camera's match"
    for pid, cams in query_cams.items():  # two queries, each from another camera
        assert len(cams) == len(set(cams)) == p.queries_per_id
        assert set(cams) <= set(gallery_cams[pid])
        per_camera = [gallery_cams[pid].count(c) for c in set(gallery_cams[pid])]
        lo, hi = p.gallery_per_camera
        assert all(lo <= n <= hi for n in per_camera)
    assert manifest["counts"] == {"bounding_box_train": len(tiny.train), "query": len(tiny.query),
                                  "bounding_box_test": len(tiny.gallery)}


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_manifest_names_the_fonts_and_run_records_carry_its_header(tiny):
    manifest = read_manifest(tiny.dataset_dir)
    files = [name for _, names in GLYPH_REID_TINY.font_families for name in names]
    assert [f["file"] for f in manifest["fonts"]] == files
    assert [f["sha256"] for f in manifest["fonts"]] == \
        [_sha256(os.path.join(BUNDLED_FONT_ROOT, name)) for name in files]
    assert (manifest["generator"], manifest["version"], manifest["seed"]) == \
        ("sfsc.data.hangul", 1, 0)
    assert manifest["params"]["image_size"] == [32, 32]
    assert [(c["style"], c["condition"]) for c in manifest["cameras"]] == [
        (s, c) for s, _ in GLYPH_REID_TINY.font_families for c in ("clean", "degraded")]
    header = synthetic_header("GlyphReIDTiny")
    assert header == {k: manifest[k] for k in ("generator", "version", "seed", "params", "fonts")}
    assert synthetic_header("Market1501") is None


def test_only_characters_every_font_draws(tiny):
    # DejaVu draws "A"; the space is an empty glyph; DejaVu has no Hangul.
    assert drawn_characters(_fonts(), [ord("A"), ord(" "), 0xAC00]) == [ord("A")]
    # Every DejaVu font draws all 10 digits and 52 letters: the identities' pool.
    assert read_manifest(tiny.dataset_dir)["num_characters"] == 62


def test_hangul_header_names_every_font_of_the_three_styles(tmp_path, monkeypatch):
    """HangulReID's own header, from stand-in files under its font names (no Korean font)."""
    names = [n for _, files in HangulReID.params.font_families for n in files]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.join(BUNDLED_FONT_ROOT, "DejaVuSans.ttf"), tmp_path / name)
    monkeypatch.setattr(HangulReID, "font_folders", (str(tmp_path),))
    header = synthetic_header("HangulReID")
    assert (header["generator"], header["version"], header["seed"]) == ("sfsc.data.hangul", 1, 0)
    assert [f["file"] for f in header["fonts"]] == names and len(names) >= 30
    assert {f["style"] for f in header["fonts"]} == {"gothic", "myeongjo", "brush"}
    assert {f["sha256"] for f in header["fonts"]} == \
        {_sha256(os.path.join(BUNDLED_FONT_ROOT, "DejaVuSans.ttf"))}
    params = header["params"]
    assert (params["num_train_ids"], params["num_test_ids"]) == (751, 750)
    assert params["characters"] == [[0xAC00, 0xD7A3]]  # Hangul syllables, no Han ideographs


def test_fastreid_loaders(tiny, monkeypatch):
    from fastreid.config import get_cfg
    from fastreid.data import build as data_build

    monkeypatch.setattr(data_build, "_root", tiny.root)  # FastReID reads it once, at import
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.DATASETS.NAMES = cfg.DATASETS.TESTS = ("GlyphReIDTiny",)
    cfg.INPUT.SIZE_TRAIN = cfg.INPUT.SIZE_TEST = [32, 32]
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.SAMPLER_TRAIN = "NaiveIdentitySampler"
    cfg.DATALOADER.NUM_INSTANCE = 4
    cfg.SOLVER.IMS_PER_BATCH = 16
    train_loader = data_build.build_reid_train_loader(cfg)
    assert train_loader.dataset.num_classes == GLYPH_REID_TINY.num_train_ids
    batch = next(iter(train_loader))
    assert batch["images"].shape == (16, 3, 32, 32)
    assert len(set(batch["targets"].tolist())) == 4  # 4 identities x 4 instances
    test_loader, num_query = data_build.build_reid_test_loader(cfg, dataset_name="GlyphReIDTiny")
    assert num_query == len(tiny.query)
    assert sum(len(b["targets"]) for b in test_loader) == len(tiny.query) + len(tiny.gallery)


class _CopiedFonts(GlyphReIDTiny):
    """The test set with its fonts in a folder of the test's own."""

    font_folders = ()


def test_a_changed_font_file_regenerates_the_folder(tmp_path, monkeypatch):
    fonts = tmp_path / "fonts"
    shutil.copytree(BUNDLED_FONT_ROOT, fonts, ignore=lambda d, names: [
        n for n in names if not n.startswith("DejaVu")])
    monkeypatch.setattr(_CopiedFonts, "font_folders", (str(fonts),))
    first = _CopiedFonts(root=str(tmp_path / "data"))
    stamp = os.path.getmtime(os.path.join(first.dataset_dir, "manifest.json"))
    assert _CopiedFonts(root=str(tmp_path / "data")).dataset_dir == first.dataset_dir
    assert os.path.getmtime(os.path.join(first.dataset_dir, "manifest.json")) == stamp
    before = _hashes(first.dataset_dir)
    # Another build of a font under the same name (replaced, as a package upgrade does): other
    # glyphs, so other images.
    shutil.copy(fonts / "DejaVuSansMono.ttf", fonts / "upgrade.tmp")
    os.replace(fonts / "upgrade.tmp", fonts / "DejaVuSans.ttf")
    again = _CopiedFonts(root=str(tmp_path / "data"))
    manifest = read_manifest(again.dataset_dir)
    entry = next(f for f in manifest["fonts"] if f["file"] == "DejaVuSans.ttf")
    assert entry["sha256"] == _sha256(str(fonts / "DejaVuSansMono.ttf"))
    assert _hashes(again.dataset_dir) != before
    assert sorted(os.listdir(tmp_path / "data")) == ["GlyphReIDTiny"]  # nothing stale left


def test_missing_fonts_name_the_files_and_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setattr(HangulReID, "font_folders", (str(tmp_path / "no-fonts"),))
    with pytest.raises(FontsMissingError) as err:
        HangulReID(root=str(tmp_path / "data"))
    message = str(err.value)
    assert APT_LINE in message and "nanum/NanumGothic.ttf" in message
    assert str(tmp_path / "no-fonts") in message
    assert isinstance(err.value, DatasetError)  # the tools' user errors: message, exit 2
    assert not (tmp_path / "data").exists()
    with pytest.raises(FontsMissingError, match=re.escape(APT_LINE)):
        synthetic_header("HangulReID")


def test_the_documented_install_steps_install_the_packages_the_error_names():
    with open(os.path.join(ROOT, "Makefile")) as f:
        make = f.read()
    packages = re.search(r"^HANGUL_FONTS\s*:?=\s*(.+)$", make, re.M).group(1).split()
    assert "apt-get install -y " + " ".join(packages) == APT_LINE
    assert re.search(r"^hangul-fonts:", make, re.M)
    with open(os.path.join(ROOT, "benchmarks", "HangulReID", "README.md")) as f:
        assert APT_LINE in f.read()


def test_the_sample_sheet_shows_each_identity_as_each_camera_sees_it(tiny):
    pids, cameras, cells = choose_sheet(tiny.dataset_dir, identities=5, seed=1)
    assert len(pids) == 5 and cameras == [1, 2, 3, 4, 5, 6]
    seen = defaultdict(set)  # pid -> cameras, from FastReID's lists
    for _, pid, camid in tiny.query + tiny.gallery:
        seen[pid].add(camid + 1)
    for _, pid, camid in tiny.train:
        seen[int(pid.split("_")[1])].add(int(camid.split("_")[1]) + 1)
    # Identities seen by the most cameras come first: no one seen by more is left out.
    widest = max(len(c) for pid, c in seen.items() if pid)
    assert any(len(seen[p]) == widest for p in pids)
    for row, cam in zip(cells, cameras):
        for path, pid in zip(row, pids):
            if path is None:
                assert cam not in seen[pid]
            else:
                assert parse_name(os.path.basename(path))[:2] == (pid, cam)
    sheet = sample_sheet(tiny.dataset_dir, identities=5, seed=1, scale=2, label_width=150)
    # Its cells are the images, enlarged twice by repeating pixels.
    path = next(p for p in cells[0] if p is not None)
    col = cells[0].index(path)
    x, y = 150 + 4 + col * (64 + 4), 18 + 4
    img = Image.open(path).convert("RGB")
    cell = sheet.crop((x, y, x + 64, y + 64))
    assert list(cell.resize((32, 32), Image.NEAREST).getdata()) == list(img.getdata())
    assert sheet.size == (150 + 5 * 68 + 4, 18 + 6 * 68 + 4)
