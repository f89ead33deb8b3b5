"""The top README's benchmark summary against the committed results: each row's SFSC cells and
its three differences are recomputed from the results.json beside the results.md it links, so
a table rewritten from new records cannot leave the summary behind."""
import json
import os
import re

import numpy as np

from sfsc.benchmark.tables.method_scores import cross_row

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = {"minus the unified diagonal": "unified", "minus BCT-S": "bct_s",
           "minus Asymmetric-S": "asymmetric_s"}


def _summary_rows():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^## Benchmark\n(.*?)^## ", text, flags=re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Benchmark' section"
    lines = [line for line in section.group(1).splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return header, [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def _numbers(cell: str):
    return [float(v.replace("−", "-")) for v in re.findall(r"[+−-]?\d+\.\d", cell)]


def _mean_row(results: dict, method: str) -> np.ndarray:
    seeds = results["methods"][method]["seeds"]
    return np.mean([cross_row(results, method, k) for k in seeds], axis=0)


def test_every_summary_row_is_its_results_file():
    header, rows = _summary_rows()
    assert header[1] == "SFSC" and set(header[2:]) == set(COLUMNS), header
    assert len(rows) >= 2
    for row in rows:
        link = re.search(r"\]\(([^)]+/results\.md)\)", row[0])
        assert link, f"summary row without a results.md link: {row[0]}"
        with open(os.path.join(ROOT, os.path.dirname(link.group(1)), "results.json")) as f:
            results = json.load(f)
        sfsc = _mean_row(results, "sfsc")
        # Rounding to one decimal on both sides: the cell and a difference of rounded means.
        np.testing.assert_allclose(_numbers(row[1]), sfsc, atol=0.051, err_msg=row[0])
        for name, cell in zip(header[2:], row[2:]):
            other = _mean_row(results, COLUMNS[name])
            np.testing.assert_allclose(_numbers(cell), sfsc - other, atol=0.051,
                                       err_msg=f"{row[0]}: {name}")


def test_the_number_reader_reads_signs_and_dashes():
    assert _numbers("+19.9 / −1.7 / +0.0 / 72.3") == [19.9, -1.7, 0.0, 72.3]
