"""results.json (every measurement) and results.md (tables and the findings) of the
gallery-index benchmark."""
from __future__ import annotations

import json
import os
from typing import List, Tuple

from ...fastreid.checkpoint import atomic_write_bytes
from .analysis import TARGET_RECALL, TARGET_SPEEDUP, operating_points
from .made_features import __doc__ as MADE_DOC

__all__ = ["markdown", "write_report"]


def _w(width) -> str:
    """A width as the project writes it: 0.25, 0.5, 0.75, 1.0."""
    return "1.0" if float(width) == 1 else f"{float(width):g}"


def _mib(n: int) -> str:
    return f"{n / 2 ** 20:,.0f}"


def _gallery_lines(part: dict) -> List[str]:
    g, m = part["gallery"], part["model"]
    return [
        f"Model `{m['output_dir']}/{m['checkpoint']}` (test set {m['dataset']}, widths "
        f"{', '.join(_w(w) for w in m['widths'])}, test-time flip {m['flip']}). Gallery "
        f"indexed with the full model (1.0x): **{g['size']:,} rows** = {g['test_gallery']:,} "
        f"test-gallery images + **{g['real_distractors']:,} real distractors** (rendered "
        f"images of identities outside every split, extracted by the model) + "
        f"**{g['made_distractors']:,} made distractors** (features mixed from the real ones, "
        f"below). Queries: the test set's {g['queries']} query images at every width.", ""]


def _build_table(entries: List[dict]) -> List[str]:
    lines = ["| index | factory | gallery rows | training rows | train (s) | add (s) | "
             "index (MiB) | float32 vectors (MiB) | IVF list imbalance |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        b = e["build"]
        imbalance = f"{b['list_imbalance']:.2f}" if b["list_imbalance"] else "-"
        lines.append(f"| {e['name']} | `{e['factory']}` | {e['gallery_size']:,} | "
                     f"{b['train_rows']:,} | {b['train_s']:.1f} | {b['add_s']:.1f} | "
                     f"{_mib(b['index_bytes'])} | {_mib(b['vectors_bytes'])} | {imbalance} |")
    return lines + ["", "Index size: its serialisation (vectors or codes, ids, quantiser, "
                    "graph), which is what it holds in memory. List imbalance: faiss's "
                    "imbalance factor (1 when every list has the same size; a query's cost "
                    "grows with the size of the lists it visits).", ""]


def _points_table(entry: dict) -> List[str]:
    param = entry["param"] or "setting"
    lines = [f"**{entry['name']}** (`{entry['factory']}`, {entry['gallery_size']:,} rows"
             + (f"; {entry['note']}" if entry["note"] else "") + ")", "",
             f"| {param} | query width | recall@1 | recall@10 | recall@100 | mAP approx / "
             "exact | R1 approx / exact | queries/s | × exact |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for value, rows in operating_points(entry).items():
        for width, r in sorted(rows.items()):
            lines.append(
                f"| {value if value is not None else '-'} | {_w(width)} | {r['recall@1']:.3f} | "
                f"{r['recall@10']:.3f} | {r['recall@100']:.3f} | {r['mAP']:.2f} / "
                f"{r['mAP_exact']:.2f} | {r['R1']:.2f} / {r['R1_exact']:.2f} | "
                f"{r['qps']:,.0f} | {r['speedup']:.1f} |")
    return lines + [""]


def _loss_lines(found: dict) -> List[str]:
    summary = found["mean_recall@10_lost"]
    widths = sorted({w for per in summary.values() for w in per}, key=float)
    lines = ["Recall@10 lost against exact search, mean over each index's operating points:",
             "", "| index | " + " | ".join(f"{_w(w)}x queries" for w in widths) + " |",
             "|---|" + "---:|" * len(widths)]
    for index, per in summary.items():
        lines.append(f"| {index} | " + " | ".join(f"{per.get(w, float('nan')):.3f}"
                                                   for w in widths) + " |")
    return lines + [""]


def _remedy_lines(remedy: dict) -> List[str]:
    if remedy is None:
        return []
    lines = ["Smallest nprobe of the sweep with recall@10 >= "
             f"{TARGET_RECALL} (none: not reached in the sweep):", "",
             "| quantiser | " + " | ".join(f"{_w(w)}x" for w in remedy["nprobe_needed"]) + " |",
             "|---|" + "---:|" * len(remedy["nprobe_needed"])]
    for label, key in (("full-width training sample", "nprobe_needed"),
                       ("mixed-width training sample", "nprobe_needed_mixed")):
        if remedy[key] is not None:
            lines.append(f"| {label} | " + " | ".join(str(v if v is not None else "none")
                                                     for v in remedy[key].values()) + " |")
    if remedy["mixed_vs_plain"]:
        lines += ["", "| nprobe | width | recall@10 full-width quantiser | recall@10 mixed | "
                  "queries/s full-width | queries/s mixed |", "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {g['nprobe']} | {_w(g['width'])} | {g['recall@10']:.3f} | "
                  f"{g['recall@10_mixed']:.3f} | {g['qps']:,.0f} | {g['qps_mixed']:,.0f} |"
                  for g in remedy["mixed_vs_plain"]]
    return lines + [""]


def _target_lines(target: dict) -> List[str]:
    head = (f"Target: one operating point where every width's recall@10 >= {TARGET_RECALL} at "
            f">= {TARGET_SPEEDUP:g}x the queries per second of exact search on the same gallery.")
    if target["reached"]:
        lines = [head + " **Reached** at:", ""]
        lines += [f"- {p['index']} {p['param']} {p['value']} ({p['gallery_size']:,} rows): "
                  f"lowest recall@10 {p['min_recall@10']:.3f}, lowest speed-up "
                  f"{p['min_speedup']:.1f}x" for p in target["points"]]
    else:
        c = target["closest_fast_enough"]
        lines = [head + " **Not reached**" + (
            f": of the points at >= {TARGET_SPEEDUP:g}x, the best is {c['index']} "
            f"{c['param']} {c['value']} with lowest recall@10 {c['min_recall@10']:.3f} "
            f"({c['min_speedup']:.1f}x)." if c else ": no point is 10x faster than exact.")]
    return lines + [""]


def _part(title: str, part: dict, found: dict) -> List[str]:
    lines = [f"## {title}", ""] + _gallery_lines(part) + ["### Build", ""]
    lines += _build_table(part["indexes"]) + ["### Search, per query width", ""]
    for entry in part["indexes"]:
        lines += _points_table(entry)
    lines += ["### Sub-model queries against full-model queries", ""] + _loss_lines(found)
    lines += ["### Remedy", ""] + _remedy_lines(found["remedy"])
    return lines + ["### Target", ""] + _target_lines(found["target"])


def markdown(results: dict, header: List[str]) -> str:
    """results.md: ``header`` (provenance, notes), then every measured model's sections."""
    s = results["settings"]
    lines = ["# Gallery index: what approximate search costs each width", ""] + list(header)
    lines += [f"faiss {results['faiss']}, {s['threads']} search / build thread(s); lists "
              f"of depth {s['depth']}; recall@k = share of the exact top k (identities "
              "ignored) in the index's top k; mAP / R1 in % on the junk-free top "
              f"{s['depth']} of the index's lists and of exact search's lists; × exact = "
              "queries per second over exact search's on the same gallery and queries.", ""]
    lines += _part("Main model", results["main"], results["findings"]["main"])
    if "contrast" in results:
        lines += _part("Contrast model", results["contrast"], results["findings"]["contrast"])
    lines += ["## How the made distractors are made", "", " ".join(
        line.strip() for line in MADE_DOC.split("\n\n", 1)[1].splitlines()), ""]
    return "\n".join(lines)


def write_report(results: dict, folder: str, header: List[str]) -> Tuple[str, str]:
    """Write results.json and results.md into ``folder``; their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = os.path.join(folder, "results.json"), os.path.join(folder, "results.md")
    text = json.dumps(results, indent=1, default=float) + "\n"
    atomic_write_bytes(paths[0], lambda f: f.write(text.encode()))
    md = markdown(results, header) + "\n"
    atomic_write_bytes(paths[1], lambda f: f.write(md.encode()))
    return paths
