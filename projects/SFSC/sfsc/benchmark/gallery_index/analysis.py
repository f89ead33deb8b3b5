"""What the measurements say: whether sub-model queries lose more than full-model ones, what
the remedy buys, and whether the target operating point exists."""
from __future__ import annotations

from typing import Dict, List, Optional

__all__ = ["TARGET_RECALL", "TARGET_SPEEDUP", "findings", "operating_points"]

#: Every width's recall@10 at least this, at least this many times exact search's speed.
TARGET_RECALL, TARGET_SPEEDUP = 0.95, 10.0


def operating_points(entry: dict) -> Dict[object, Dict[float, dict]]:
    """{operating point value: {width: measurement row}} of one index entry."""
    key = entry["param"] or "setting"
    points: Dict[object, Dict[float, dict]] = {}
    for row in entry["points"]:
        points.setdefault(row[key], {})[row["width"]] = row
    return points


def _target(entries: List[dict]) -> dict:
    met, closest = [], None
    for entry in entries:
        if entry["name"] == "Flat":
            continue
        for value, rows in operating_points(entry).items():
            worst_recall = min(r["recall@10"] for r in rows.values())
            worst_speedup = min(r["speedup"] for r in rows.values())
            point = {"index": entry["name"], "param": entry["param"], "value": value,
                     "gallery_size": entry["gallery_size"],
                     "min_recall@10": worst_recall, "min_speedup": worst_speedup}
            if worst_recall >= TARGET_RECALL and worst_speedup >= TARGET_SPEEDUP:
                met.append(point)
            elif worst_speedup >= TARGET_SPEEDUP and (
                    closest is None or worst_recall > closest["min_recall@10"]):
                closest = point
    met.sort(key=lambda p: -p["min_speedup"])
    return {"recall@10": TARGET_RECALL, "speedup": TARGET_SPEEDUP, "reached": bool(met),
            "points": met, "closest_fast_enough": None if met else closest}


def _sub_model_loss(entries: List[dict]) -> List[dict]:
    """Per index and operating point: each width's recall@10 and mAP lost against exact
    search, next to the full model's."""
    out = []
    for entry in entries:
        if entry["name"] == "Flat":
            continue
        for value, rows in operating_points(entry).items():
            full = rows.get(1.0)
            for width, row in sorted(rows.items()):
                out.append({"index": entry["name"], "param": entry["param"], "value": value,
                            "width": width, "recall@10_lost": 1 - row["recall@10"],
                            "mAP_lost": row["mAP_exact"] - row["mAP"],
                            "extra_recall@10_lost_vs_full":
                                (full["recall@10"] - row["recall@10"]) if full else None})
    return out


def _loss_summary(loss: List[dict]) -> Dict[str, Dict[str, float]]:
    """{index: {width: mean recall@10 lost over its operating points}}."""
    sums: Dict[str, Dict[str, List[float]]] = {}
    for row in loss:
        sums.setdefault(row["index"], {}).setdefault(f"{row['width']:g}", []).append(
            row["recall@10_lost"])
    return {index: {w: sum(v) / len(v) for w, v in widths.items()}
            for index, widths in sums.items()}


def _needed(entry: Optional[dict]) -> Optional[Dict[str, Optional[int]]]:
    """{width: the smallest operating point value with recall@10 >= the target}."""
    if entry is None:
        return None
    points = operating_points(entry)
    widths = sorted({w for rows in points.values() for w in rows})
    return {f"{w:g}": next((v for v in sorted(points) if points[v][w]["recall@10"]
                            >= TARGET_RECALL), None) for w in widths}


def _remedy(entries: List[dict]) -> Optional[dict]:
    plain = next((e for e in entries if e["name"] == "IVF-Flat"), None)
    mixed = next((e for e in entries if e["name"].startswith("IVF-Flat, mixed")), None)
    if plain is None:
        return None
    gains = []
    if mixed is not None:
        ours, theirs = operating_points(plain), operating_points(mixed)
        for value in sorted(set(ours) & set(theirs)):
            for width in sorted(ours[value]):
                gains.append({"nprobe": value, "width": width,
                              "recall@10": ours[value][width]["recall@10"],
                              "recall@10_mixed": theirs[value][width]["recall@10"],
                              "qps": ours[value][width]["qps"],
                              "qps_mixed": theirs[value][width]["qps"]})
    return {"nprobe_needed": _needed(plain), "nprobe_needed_mixed": _needed(mixed),
            "mixed_vs_plain": gains}


def findings(results: dict) -> dict:
    """The findings of :func:`run_index_benchmark`'s results, per measured model."""
    out = {}
    for part in ("main", "contrast"):
        if part not in results:
            continue
        entries = results[part]["indexes"]
        loss = _sub_model_loss(entries)
        out[part] = {"target": _target(entries), "sub_model_loss": loss,
                     "mean_recall@10_lost": _loss_summary(loss), "remedy": _remedy(entries)}
    return out
