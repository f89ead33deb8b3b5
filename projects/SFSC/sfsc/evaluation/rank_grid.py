"""A picture of ranked lists across models: M(φ_q, φ_g) one query at a time.

Each row shows a query image, then its top-k gallery images framed green (same identity) or
red (another identity), under a line with the query's AP and the rank of its first true
match. Several *panels* side by side show the same queries against the same gallery from
different query models (e.g. the 0.25x and the 1.0x sub-model against a 1.0x gallery).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .matches import as_id_array
from .rank_lists import RankedLists, choose_queries, ranked_lists

__all__ = ["FeatureSet", "Panel", "GridLayout", "MATCH_COLOUR", "MISMATCH_COLOUR",
           "QUERY_COLOUR", "draw_rank_grid", "rank_grid_figure"]

MATCH_COLOUR = (0, 170, 0)
MISMATCH_COLOUR = (210, 0, 0)
QUERY_COLOUR = (40, 40, 40)
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


class FeatureSet(NamedTuple):
    """Features of one model on one split: feats (N, D), pids / camids (N,) int, image paths."""

    feats: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    paths: Sequence[str]


class Panel(NamedTuple):
    title: str
    lists: RankedLists


@dataclass(frozen=True)
class GridLayout:
    """Pixel geometry of a grid: ``panels`` x (``rows`` x (query + ``k`` gallery cells)).

    Cells are ``cell_w`` x ``cell_h`` images inside a ``frame``-pixel border; a ``text_h`` line
    above each row holds its AP and first-match rank; a ``title_h`` line above each panel.
    """

    rows: int
    k: int
    panels: int = 1
    cell_w: int = 64
    cell_h: int = 128
    frame: int = 4
    pad: int = 4
    query_gap: int = 12  # extra space between the query and its ranked list
    panel_gap: int = 24
    text_h: int = 16
    title_h: int = 22

    @property
    def panel_width(self) -> int:
        return (self.k + 1) * (self.cell_w + 2 * self.frame + self.pad) + self.query_gap

    @property
    def row_height(self) -> int:
        return self.text_h + self.cell_h + 2 * self.frame + self.pad

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the whole picture in pixels."""
        width = self.panels * self.panel_width + (self.panels - 1) * self.panel_gap + self.pad
        return width, self.title_h + self.rows * self.row_height + self.pad

    def frame_box(self, panel: int, row: int, col: int) -> Tuple[int, int, int, int]:
        """(x0, y0, x1, y1), inclusive, of the frame around cell ``col`` (0: the query)."""
        x0 = self.pad + panel * (self.panel_width + self.panel_gap) \
            + col * (self.cell_w + 2 * self.frame + self.pad) + (self.query_gap if col else 0)
        y0 = self.title_h + row * self.row_height + self.text_h
        return x0, y0, x0 + self.cell_w + 2 * self.frame - 1, y0 + self.cell_h + 2 * self.frame - 1

    def text_origin(self, panel: int, row: int) -> Tuple[int, int]:
        x0, y0, _, _ = self.frame_box(panel, row, 0)
        return x0, y0 - self.text_h + 1


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _caption(q: int, lists: RankedLists) -> str:
    first = int(lists.first_rank[q])
    return (f"query {q}: AP {lists.ap[q] * 100:.1f}%, first match at rank {first}"
            if first else f"query {q}: no true match in the gallery")


def draw_rank_grid(panels: Sequence[Panel], queries: Sequence[int], query_paths: Sequence[str],
                   gallery_paths: Sequence[str], layout: Optional[GridLayout] = None,
                   caption: Callable[[int, RankedLists], str] = _caption) -> Image.Image:
    """The grid of ``queries`` (row order) for every panel, as an RGB image (``layout.size``);
    ``caption(query, lists)`` is the line above each row."""
    if not panels:
        raise ValueError("draw_rank_grid needs at least one panel")
    k = panels[0].lists.indices.shape[1]
    layout = layout or GridLayout(rows=len(queries), k=k, panels=len(panels))
    if (layout.rows, layout.k, layout.panels) != (len(queries), k, len(panels)):
        raise ValueError("the layout does not match the queries, k or panels")
    canvas = Image.new("RGB", layout.size, _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font, title_font = _font(layout.text_h - 4), _font(layout.title_h - 6)
    cache: Dict[str, Image.Image] = {}

    def cell(path: str, box, colour) -> None:
        if path not in cache:
            with Image.open(path) as img:
                cache[path] = img.convert("RGB").resize((layout.cell_w, layout.cell_h),
                                                        Image.BILINEAR)
        draw.rectangle(box, outline=colour, width=layout.frame)
        canvas.paste(cache[path], (box[0] + layout.frame, box[1] + layout.frame))

    for p, panel in enumerate(panels):
        x0 = layout.frame_box(p, 0, 0)[0]
        draw.text((x0, 3), panel.title, fill=_TEXT, font=title_font)
        lists = panel.lists
        for r, q in enumerate(queries):
            draw.text(layout.text_origin(p, r), caption(q, lists), fill=_TEXT, font=font)
            cell(query_paths[q], layout.frame_box(p, r, 0), QUERY_COLOUR)
            for c, (g, same) in enumerate(zip(lists.indices[q], lists.same_id[q]), start=1):
                if g >= 0:
                    colour = MATCH_COLOUR if same else MISMATCH_COLOUR
                    cell(gallery_paths[g], layout.frame_box(p, r, c), colour)
    return canvas


def _check_set(fs: FeatureSet, what: str) -> None:
    n = len(fs.feats)
    if not (len(fs.pids) == len(fs.camids) == len(fs.paths) == n):
        raise ValueError(f"{what}: {n} feature rows but {len(fs.pids)} pids, {len(fs.camids)} "
                         f"camids and {len(fs.paths)} image paths")


def rank_grid_figure(query_sets: Sequence[Tuple[str, FeatureSet]], gallery: FeatureSet, *,
                     order: str, count: int = 8, k: int = 10, seed: Optional[int] = None,
                     metric: str = "cosine") -> Tuple[Image.Image, np.ndarray, List[Panel]]:
    """Rank every (title, query set) against ``gallery`` and draw the chosen queries.

    Queries are chosen (``order``: worst | best | random with ``seed``) by the first query
    set's lists and shown in every panel. All query sets describe the same images in the same
    order. Returns (picture, chosen query indices (n,), panels).
    """
    _check_set(gallery, "gallery")
    ref = query_sets[0][1]
    for title, qs in query_sets:
        _check_set(qs, f"query set {title!r}")
        if not (np.array_equal(as_id_array(qs.pids, "pids"), as_id_array(ref.pids, "pids"))
                and np.array_equal(as_id_array(qs.camids, "camids"),
                                   as_id_array(ref.camids, "camids"))):
            raise ValueError(f"query set {title!r} describes other images than "
                             f"{query_sets[0][0]!r}: panels must show the same queries")
    panels = [Panel(title, ranked_lists(qs.feats, gallery.feats, qs.pids, qs.camids,
                                        gallery.pids, gallery.camids, k, metric))
              for title, qs in query_sets]
    chosen = choose_queries(panels[0].lists, order, count, seed)
    image = draw_rank_grid(panels, chosen, ref.paths, gallery.paths)
    return image, chosen, panels
