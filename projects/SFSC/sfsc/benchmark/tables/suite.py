"""The whole benchmark as one call: train what is missing, score every method's matrices and
write the report (results.md, results.json, heatmaps/, curves/) for one dataset folder."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

from fastreid.config import get_cfg

from ...config import add_sfsc_config
from .curves import plot
from .matrices import is_cached, members_to_evaluate, model_set_matrix
from .methods import benchmark_runs, method_named, resolve_methods
from .records import curves_to_series
from .report import aggregate, heatmaps, markdown
from .runner import BenchmarkRunner

__all__ = ["run_suite", "sub_widths", "pooled_machines", "CURVES"]

# Methods whose training curves are drawn, one figure per seed.
CURVES = ("sfsc", "bct_s")
# Kept in the committed run records, left out of results.json's list of runs.
RECORD_ONLY = ("effective_config", "compatibility", "curves")


def sub_widths(config_dir: str, net: str, opts: Sequence[str]) -> List[float]:
    """The sub-model widths of the folder's ``sfsc_<net>.yml`` after ``opts``, ascending."""
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(config_dir, f"sfsc_{net}.yml"))
    cfg.merge_from_list(list(opts))
    return sorted(float(w) for w in cfg.SFSC.WIDTHS)


def pooled_machines(records: Sequence[Dict]) -> str:
    """What a table pools, e.g. ``cpu: AMD EPYC (30 runs), Intel Xeon (2 runs)``."""
    counts: Dict[str, Dict[str, int]] = {}
    for record in records:
        where = record.get("machine") or {}
        device = where.get("device", "cpu")
        per_device = counts.setdefault("cpu" if device == "cpu" else "gpu", {})
        name = where.get("cpu", "CPU not recorded") if device == "cpu" else device
        per_device[name] = per_device.get(name, 0) + 1
    return "; ".join(f"{kind}: " + ", ".join(f"{name} ({n} run{'s' if n > 1 else ''})"
                                             for name, n in sorted(names.items()))
                     for kind, names in sorted(counts.items()))


def _matrices(runner: BenchmarkRunner, methods, widths, seeds, records) -> Dict[str, Dict]:
    """{method key: {seed: compatibility matrix}}: a switchable run's own, else the model set's."""
    matrices: Dict[str, Dict] = {}
    for method in methods:
        matrices[method.key] = {}
        for seed in seeds:
            if method.kind != "switchable":
                matrices[method.key][seed] = model_set_matrix(runner, method, widths, seed,
                                                              records)
                continue
            matrix = records[(seed, method.key)]["compatibility"]
            if matrix is None:
                raise SystemExit(f"{method.key} (seed {seed}) finished without a "
                                 f"compatibility.json; its record: "
                                 f"{runner.record_path(seed, method.key)}")
            matrices[method.key][seed] = matrix
    return matrices


def run_suite(root: str, dataset: str, method_keys: Sequence[str], seeds: Sequence[int],
              net: str, runs_root: str, output: str, opts: Sequence[str], command: str,
              dry_run: bool = False, records_from: Sequence[str] = ()) -> Optional[str]:
    """Train ``configs/<dataset>``'s runs for ``method_keys`` × ``seeds`` (records reused), write
    the report under ``output/<dataset>`` and return that folder. ``command`` is quoted in it.

    ``dry_run``: print what would be reused or trained and why, then stop (returns None).
    ``records_from``: other record folders whose matching records are reused, not copied."""
    config_dir = os.path.join(root, "configs", dataset)
    widths = sub_widths(config_dir, net, opts)
    methods = resolve_methods(method_keys, config_dir, net)
    out = os.path.join(output, dataset)
    runner = BenchmarkRunner(root, config_dir, os.path.join(runs_root, dataset),
                             benchmark_runs(methods, widths, net), list(seeds), list(opts),
                             records_dir=os.path.join(out, "runs"), records_from=records_from)
    model_sets = [method for method in methods if method.kind != "switchable"]
    need = set()
    for method in model_sets:
        need |= members_to_evaluate(runner, method, widths, seeds)
    if dry_run:
        planned = runner.plan(need)
        for p in planned:
            runner.log(p.describe())
        for method in model_sets:
            for seed in seeds:
                cached = is_cached(runner, method, widths, seed)
                runner.log(f"seed {seed} {method.key} matrix: "
                           + ("cached" if cached else "to evaluate"))
        counts = {a: sum(p.action == a for p in planned) for a in ("reuse", "train", "conflict")}
        runner.log(f"Dry run: {len(planned)} runs, {counts['reuse']} reused, {counts['train']} "
                   f"to train, {counts['conflict']} in conflict; nothing trained or written")
        return None

    def cache_model_sets(seed: int, records: Dict) -> None:
        # Evaluated (and cached beside the records) while this machine holds the seed's
        # checkpoints: a table resumed elsewhere then needs none of them trained again.
        for method in model_sets:
            model_set_matrix(runner, method, widths, seed, records)

    record_list = runner.run_all(need_checkpoints=need, seed_trained=cache_model_sets)
    records = {(r["seed"], r["run"]): r for r in record_list}
    results = aggregate(_matrices(runner, methods, widths, seeds, records))

    os.makedirs(out, exist_ok=True)
    train_time = sum(r["wall_time_s"] for r in record_list)
    header = [f"Command: `{command}`", "",
              f"Seeds {list(seeds)}; sub-model widths {widths}; cells are mean ± std over seeds "
              f"(std with ddof 1). Training wall time {train_time / 60:.0f} min in total, "
              f"{train_time / 60 / len(seeds):.0f} min per seed; runs trained at git "
              f"commit {', '.join(sorted({r['git_commit'] for r in record_list}))}; "
              f"on {pooled_machines(record_list)}."]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(results, dataset, header) + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"dataset": dataset, "widths": widths, "seeds": list(seeds),
                   "command": command, "methods": results,
                   "runs": [{k: v for k, v in r.items() if k not in RECORD_ONLY}
                            for r in record_list]}, f, indent=1)
    heatmaps(results, os.path.join(out, "heatmaps"))
    os.makedirs(os.path.join(out, "curves"), exist_ok=True)
    for key in CURVES:
        if key not in method_keys:
            continue
        for seed in seeds:
            curves = records[(seed, key)]["curves"]
            if curves:
                plot(curves_to_series(curves), os.path.join(out, "curves", f"{key}_seed{seed}.png"),
                     title=f"{method_named(key).title}, seed {seed}")
    return out
