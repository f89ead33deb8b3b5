"""tools/plot_training.py: the paper's Fig. 5 and 6 from run records and training folders
overlaid, at the resolution a run record keeps for a long schedule."""
import importlib.util
import json
import os

import pytest
from PIL import Image

from sfsc.benchmark.tables.figures import Run, load_run, plot_conflicts, plot_gradient_norms
from sfsc.benchmark.tables.records import MAX_POINTS, read_curves, write_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = ["ori-0.25", "ori-0.5", "0.25-0.5"]
TASKS = ["ori", "compat@0.25", "compat@0.5"]


def _tool():
    spec = importlib.util.spec_from_file_location(
        "plot_training", os.path.join(ROOT, "tools", "plot_training.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _metrics(path, steps, conflict_every, log_period=20):
    """A metrics.json as the trainer writes it: every ``log_period``-th step, with counts
    cumulative (pair ori-0.25 conflicts every ``conflict_every`` steps). -> total count."""
    total = 0
    with open(path, "w") as f:
        for it in range(steps):
            total += it % conflict_every == 0
            if it % log_period != log_period - 1 and it != steps - 1:
                continue
            row = {"iteration": it, "loss_cls": 5.0 - it / steps, "time": 0.3,
                   "conflicts": 0, "conflicts_cumulative": total,
                   "layer_conflict_share": (it % 7) / 7}
            row.update({f"grad_norm/{t}": 1.0 + i + it / steps for i, t in enumerate(TASKS)})
            row.update({f"conflicts_cumulative/{p}": total if p == "ori-0.25" else 0
                        for p in PAIRS})
            row.update({f"cos/{p}": 0.1 for p in PAIRS})
            f.write(json.dumps(row) + "\n")
    return total


def _record(tmp_path, name, aggregation, steps, conflict_every):
    folder = tmp_path / name
    folder.mkdir()
    total = _metrics(folder / "metrics.json", steps, conflict_every)
    path = tmp_path / "runs" / "seed0" / f"{name}.json"
    write_record(str(path), {"run": name, "seed": 0,
                             "effective_config": {"SFSC.AGGREGATION": aggregation},
                             "curves": read_curves(str(folder / "metrics.json"))})
    return str(path), total


def _conflicts_until(it, conflict_every):
    """Conflicts a run with one every ``conflict_every`` steps from step 0 has had by ``it``."""
    return it // conflict_every + 1


def test_a_record_keeps_a_long_schedule_and_every_conflict(tmp_path):
    path, total = _record(tmp_path, "sfsc", "pcgrad", 2500, 9)
    run = load_run(path)
    assert run.label == "sfsc seed0 (pcgrad)"
    # Every logged step of a 2,500-step run (each 20th), each with the count up to it.
    logged = list(range(19, 2500, 20))
    assert run.series["conflicts_cumulative"] == [(it, _conflicts_until(it, 9)) for it in logged]
    assert logged[-1] == 2499 and _conflicts_until(2499, 9) == total
    # Ten times longer: 1,250 logged steps thinned to MAX_POINTS = 250, evenly spread. Kept
    # point i is logged step round(i · 1249 / 249), never a tie (249 = 3 · 83 would have to
    # divide 2 · i · 1249, 0 < i < 249), so floor(i · 1249 / 249 + 1/2) in integers.
    long_run, long_total = _record(tmp_path, "long", "sum", 25000, 9)
    logged = list(range(19, 25000, 20))
    assert (len(logged), MAX_POINTS) == (1250, 250)
    kept = [logged[(2 * i * 1249 + 249) // (2 * 249)] for i in range(250)]
    assert kept[:4] == [19, 119, 219, 319] and kept[-1] == 24999
    series = load_run(long_run).series["conflicts_cumulative/ori-0.25"]
    assert [it for it, _ in series] == kept
    # 249 gaps spanning 24,980 steps: 100 steps apart (5 logged steps), 4 times 120 (6).
    gaps = [b - a for a, b in zip(kept, kept[1:])]
    assert sorted(set(gaps)) == [100, 120] and gaps.count(120) == 4
    # The count is cumulative, so the kept points lose no conflict: at each, every conflict
    # since step 0 (those between two kept points included) is counted.
    assert series == [(it, _conflicts_until(it, 9)) for it in kept]
    assert series[-1] == (24999, long_total)


def test_the_tool_draws_both_figures_from_records_and_folders(tmp_path, capsys):
    sfsc, _ = _record(tmp_path, "sfsc", "pcgrad", 2500, 400)
    plain = tmp_path / "wo_aggregation"  # a training folder, its aggregation in config.yaml
    plain.mkdir()
    _metrics(plain / "metrics.json", 2500, 9)
    (plain / "config.yaml").write_text("SFSC:\n  AGGREGATION: sum\n")
    out = tmp_path / "figures"
    assert _tool()([sfsc, str(plain), "--figures", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fig5_gradient_norms.png (6 lines)" in printed
    assert "fig6_conflicts.png (10 lines)" in printed  # 2 totals, 2 shares, 2 × 3 pairs
    fig5 = Image.open(out / "fig5_gradient_norms.png")
    fig6 = Image.open(out / "fig6_conflicts.png")
    assert fig5.size[0] > 1.5 * fig5.size[1]  # the two runs side by side
    assert fig6.size[1] > 700  # two rows: totals and shares, then each run's pairs
    runs = [load_run(sfsc), load_run(str(plain), "w/o aggregation")]
    assert runs[1].label == "w/o aggregation"
    assert load_run(str(plain)).label == "wo_aggregation (sum)"
    old = Run("old", {"conflicts_cumulative": [(19, 1.0)]})  # logged before pairs and layers
    drawn = plot_conflicts(runs + [old], str(tmp_path / "fig6.png"))
    assert "sfsc seed0 (pcgrad): conflicts_cumulative/0.25-0.5" in drawn
    assert "w/o aggregation: layer_conflict_share" in drawn
    assert [line for line in drawn if line.startswith("old")] == ["old: conflicts_cumulative"]
    assert plot_gradient_norms(runs, str(tmp_path / "fig5.png"))[0] == \
        "sfsc seed0 (pcgrad): grad_norm/ori"  # the full model first, then the widths


def test_the_tools_overview_and_its_errors(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    _metrics(folder / "metrics.json", 100, 9)
    assert _tool()([str(folder)]) == 0
    assert (folder / "training_curves.png").exists()
    with pytest.raises(SystemExit):  # several runs are drawn as the figures only
        _tool()([str(folder), str(folder)])
    with pytest.raises(SystemExit):  # an overview of a record is written where told
        _tool()([str(folder / "metrics.json")])
    assert _tool()([str(tmp_path / "missing")]) == 2
    old = tmp_path / "old"  # a run without pair counts: Fig. 6 has its totals only
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({"iteration": 0, "grad_norm/ori": 1.0}) + "\n")
    assert _tool()([str(old), "--figures", str(tmp_path / "f")]) == 0
    assert not (tmp_path / "f" / "fig6_conflicts.png").exists()
