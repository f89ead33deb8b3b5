"""projects/SFSC/README.md's reference tables against the code: the config-key table lists
every key ``add_sfsc_config`` adds, with its default, and the registry table every dataset
the package registers."""
import ast
import os
import re

from fastreid.config import get_cfg
from fastreid.data.datasets import DATASET_REGISTRY
from sfsc.config import add_sfsc_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "projects", "SFSC", "README.md")


def _readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def _table_rows(heading: str):
    """Cells of each body row of the first table under the heading that contains ``heading``."""
    text = _readme()
    start = re.search(rf"^#+ .*{re.escape(heading)}.*$", text, flags=re.MULTILINE)
    assert start, f"no heading with {heading!r} in {README}"
    rows = []
    for line in text[start.end():].lstrip("\n").splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return rows[1:]  # the header row


def _flatten(node, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if hasattr(value, "items"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _added_keys() -> dict:
    before = _flatten(get_cfg())
    cfg = get_cfg()
    add_sfsc_config(cfg)
    return {k: v for k, v in _flatten(cfg).items() if k not in before}


def _same_default(written: str, value) -> bool:
    written = written.strip("`")
    if value == "":
        return written in ("empty", '""')
    try:
        parsed = ast.literal_eval(written)
    except (ValueError, SyntaxError):
        return written == str(value)
    if isinstance(value, (list, tuple)):
        return list(parsed) == list(value)
    return parsed == value and type(parsed) is type(value)


def test_config_key_table_lists_every_key_with_its_default():
    rows = {row[0].strip("`"): row[1] for row in _table_rows("Config keys")}
    added = _added_keys()
    assert sorted(set(added) - set(rows)) == [], "keys missing from the table"
    assert sorted(set(rows) - set(added)) == [], "the table lists keys the code does not add"
    wrong = {k: (rows[k], added[k]) for k in added if not _same_default(rows[k], added[k])}
    assert wrong == {}, "defaults as written vs in config.py"


def test_registry_table_lists_every_registered_dataset():
    ours = {name for name, cls in DATASET_REGISTRY._obj_map.items()
            if cls.__module__.startswith("sfsc.")}
    row = next(r for r in _table_rows("What this project registers")
               if r[0] == "`DATASET_REGISTRY`")
    listed = set(re.findall(r"`(\w+)`", row[1]))
    assert listed == ours
