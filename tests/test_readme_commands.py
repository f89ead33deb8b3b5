"""Every command line the READMEs show runs as written, up to the point where work would start.

The commands are read from the fenced ``bash`` blocks (backslash continuations joined, ``#``
comments dropped), from ``$ `` prompt lines of output blocks, and from inline code that starts
like a command. Each must use the project's one spelling (``.venv/bin/python tools/X.py``,
``.venv/bin/torchrun``, ``.venv/bin/pip``, ``make``). A tool's own argparse parser reads its
arguments (the tool runs as ``__main__`` and is stopped the moment its parser returns), its
config files under ``configs/`` exist, its ``KEY VALUE`` overrides merge into the config with
yacs (unknown keys and wrong types fail), and a training names its dataset and output folder.
"""
from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import sys

import pytest
import yaml

from fastreid.config import get_cfg
from sfsc.config import add_sfsc_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ("README.md", "projects/SFSC/README.md", "benchmarks/README.md")
ALLOWED = "'.venv/bin/python tools/X.py', '.venv/bin/torchrun', '.venv/bin/pip', 'make'"
# Inline code that runs something (a program and its arguments), not the name of a tool or one
# of its options.
_INLINE_COMMAND = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:\.venv/bin/\S+|python3?|torchrun|pip|make) \S")


def _fenced_commands(text: str):
    in_block, language, pending = False, "", ""
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            in_block, language = not in_block, fence.group(1)
            continue
        if not in_block:
            continue
        if language not in ("bash", "sh"):
            if line.startswith("$ "):
                yield line[2:]
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        pending = ""
        if words:
            yield shlex.join(words)


def _inline_commands(text: str):
    outside = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    for span in re.findall(r"`([^`\n]+)`", outside):
        if _INLINE_COMMAND.match(span):
            yield span


def _commands():
    for readme in READMES:
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            text = f.read()
        for command in [*_fenced_commands(text), *_inline_commands(text)]:
            yield pytest.param(readme, command, id=f"{readme}: {command[:90]}")


COMMANDS = list(_commands())


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace):
        super().__init__()
        self.namespace = namespace


def _parse_tool(script: str, argv, monkeypatch, capsys) -> argparse.Namespace:
    """The namespace the tool's own parser makes of ``argv``; fails with argparse's message."""
    for method in ("parse_args", "parse_intermixed_args"):
        original = getattr(argparse.ArgumentParser, method)

        def stop(self, *args, _original=original, **kwargs):
            raise _Parsed(_original(self, *args, **kwargs))

        monkeypatch.setattr(argparse.ArgumentParser, method, stop)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    try:
        runpy.run_path(script, run_name="__main__")
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as exit_info:
        pytest.fail(f"argparse refused the arguments (exit {exit_info.code}): "
                    f"{capsys.readouterr().err.strip()}")
    pytest.fail(f"{script} ended without parsing its arguments")


def _repo_config(path: str) -> bool:
    return isinstance(path, str) and path.startswith("configs/") and path.endswith((".yml",
                                                                                  ".yaml"))


def _sets_datasets(path: str) -> bool:
    """Whether the config file or one of its _BASE_ files names DATASETS."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if "DATASETS" in data:
        return True
    base = data.get("_BASE_")
    return bool(base) and _sets_datasets(os.path.join(os.path.dirname(path), base))


def _check_namespace(tool: str, args: argparse.Namespace) -> None:
    values = []
    for value in vars(args).values():
        values.extend(value if isinstance(value, list) else [value])
    for value in values:
        if _repo_config(value):
            assert os.path.isfile(os.path.join(ROOT, value)), f"{value} does not exist"
    if getattr(args, "dataset", None) and tool == "benchmark.py":
        assert os.path.isdir(os.path.join(ROOT, "configs", args.dataset)), args.dataset
    cfg = get_cfg()
    add_sfsc_config(cfg)
    default_output = cfg.OUTPUT_DIR
    config = getattr(args, "config_file", "") or ""
    if _repo_config(config):
        cfg.merge_from_file(os.path.join(ROOT, config))
    opts = list(getattr(args, "opts", None) or [])
    assert len(opts) % 2 == 0, f"overrides are not KEY VALUE pairs: {opts}"
    cfg.merge_from_list(opts)  # yacs: an unknown key or a value of the wrong type raises
    if tool == "train_net.py" and _repo_config(config):
        assert _sets_datasets(os.path.join(ROOT, config)), \
            f"{config} names no dataset: FastReID's default (Market1501) would be trained"
        assert cfg.OUTPUT_DIR != default_output, \
            f"{config} names no OUTPUT_DIR: the run would write into FastReID's {default_output}"


def _strip_environment(words):
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    return words


@pytest.mark.parametrize("readme,command", COMMANDS)
def test_command_runs_as_written(readme, command, monkeypatch, capsys):
    words = _strip_environment(shlex.split(command))
    assert words, command
    program = words[0]
    if program == "make":
        with open(os.path.join(ROOT, "Makefile")) as f:
            targets = re.findall(r"^([\w-]+):", f.read(), flags=re.MULTILINE)
        assert set(words[1:]) <= set(targets), f"no such make target in {command}"
        return
    if program in ("export", "cd", "git", "source") or program == ".venv/bin/pip":
        return
    if words == ["python3", "-m", "venv", ".venv"]:  # the one command before .venv exists
        return
    if program.startswith("tools/") and program.endswith(".sh"):
        path = os.path.join(ROOT, program)
        assert os.path.isfile(path) and os.access(path, os.X_OK), f"{program} not executable"
        return
    if program == ".venv/bin/python" and words[1:3] == ["-m", "pytest"]:
        return
    if program == ".venv/bin/torchrun":  # its own options, then the script and its arguments
        script_at = next(i for i, w in enumerate(words) if w.startswith("tools/"))
        program, words = ".venv/bin/python", [".venv/bin/python", *words[script_at:]]
    assert program == ".venv/bin/python" and len(words) > 1 and words[1].startswith("tools/"), \
        f"spell commands as one of {ALLOWED}: {command}"
    tool = words[1]
    script = os.path.join(ROOT, tool)
    assert os.path.isfile(script), f"{tool} does not exist"
    args = _parse_tool(script, words[2:], monkeypatch, capsys)
    _check_namespace(os.path.basename(tool), args)


def test_the_readmes_show_commands():
    tools = {words[1] for words in (shlex.split(c.values[1]) for c in COMMANDS)
             if words[0] == ".venv/bin/python" and len(words) > 1}
    assert {"tools/train_net.py", "tools/extract_features.py", "tools/eval_compat.py",
            "tools/build_index.py", "tools/search_index.py", "tools/visualize_ranks.py",
            "tools/benchmark.py"} <= tools
