"""The package's import graph reads bottom-up: no module imports a layer above its own.

Every ``import`` / ``from ... import`` statement of every module is read with ``ast`` (at any
depth, so an import inside a function counts as much as one at the top), relative imports are
resolved against the module's own package, and each imported ``sfsc`` module is placed in its
layer by the longest matching prefix of ``LAYERS``.
"""
import ast
import os

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "projects", "SFSC", "sfsc")

# Bottom to top (projects/SFSC/README.md, "Package layout"); a module may import its own layer
# and the layers below it. Top-level modules are placed here one by one.
LAYERS = (
    ("sfsc.fastreid", "sfsc.config", "sfsc.config_checks"),
    ("sfsc.data", "sfsc.modeling"),
    ("sfsc.evaluation",),
    ("sfsc.engine",),
    ("sfsc.benchmark", "sfsc.deploy"),
    ("sfsc",),  # the package's own __init__ only: it imports what registers components
)
ROOT = "sfsc"


def _layer_of(module: str):
    """Index in LAYERS of the longest prefix that names ``module`` (or a package above it)."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            below = prefix != ROOT and module.startswith(prefix + ".")
            if (module == prefix or below) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def _package_modules():
    """(dotted name, path, is a package __init__) of every module of the package."""
    root = os.path.dirname(PACKAGE_DIR)
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                is_init = parts[-1] == "__init__"
                yield ".".join(parts[:-1] if is_init else parts), path, is_init


MODULES = {name: (path, is_init) for name, path, is_init in _package_modules()}


def _parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), filename=path)


def _imported(module: str, path: str, is_init: bool, tree=None):
    """(line, imported sfsc module) for every import statement of ``tree`` (the file's, unless
    given), at any depth."""
    tree = _parse(path) if tree is None else tree
    package = module if is_init else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source
                       for a in node.names]
        else:
            continue
        for target in sorted(set(targets)):
            if target == ROOT or target.startswith(ROOT + "."):
                yield node.lineno, target


def test_every_module_has_a_layer():
    unplaced = [name for name in MODULES if _layer_of(name) is None]
    assert not unplaced, f"modules outside every layer of LAYERS: {unplaced}"


def test_relative_imports_resolve_to_modules():
    # Guards the resolution itself: a typo in it would let every import pass unseen.
    missing = [(name, line, target) for name, (path, is_init) in MODULES.items()
               for line, target in _imported(name, path, is_init)
               if target not in MODULES]
    assert not missing, f"imports of no module of the package: {missing}"
    seen = {target for name, (path, is_init) in MODULES.items()
            for _, target in _imported(name, path, is_init)}
    assert {"sfsc.modeling.switchable", "sfsc.config"} <= seen


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downwards(module):
    path, is_init = MODULES[module]
    own = _layer_of(module)
    assert own is not None, f"{module} is in no layer"
    upward = [f"line {line}: {target} (layer {LAYERS[_layer_of(target)]})"
              for line, target in _imported(module, path, is_init)
              if _layer_of(target) is not None and _layer_of(target) > own]
    assert not upward, f"{module} (layer {LAYERS[own]}) imports upwards: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_package_imports_are_at_module_level(module):
    # An import of the package's own modules inside a function hides an edge of the graph (it
    # is how an upward import dodges a cycle); lazy imports of optional third-party modules
    # (faiss, matplotlib, ...) are not concerned.
    path, is_init = MODULES[module]
    nested = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nested += [f"line {line}: {target}" for line, target in
                       _imported(module, path, is_init, ast.Module(node.body, []))]
    assert not nested, f"{module} imports package modules inside a function or class: {nested}"
