"""setup.py's extras: one faiss build per environment (cpu or gpu, never both), the exporters'
packages under [export], and everything the test suite imports under [dev]; every pip command
of the READMEs names extras that exist and never asks for two faiss builds."""
import ast
import importlib.metadata
import os
import re

from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "projects", "SFSC", "sfsc", "deploy")
READMES = ("README.md", "projects/SFSC/README.md", "benchmarks/README.md")


def _setup_keywords() -> dict:
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "setup")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords
            if k.arg in ("install_requires", "extras_require")}


SETUP = _setup_keywords()


def _names(requirements) -> set:
    return {Requirement(r).name.lower() for r in requirements}


def _faiss_builds(names) -> set:
    return {n for n in names if n.startswith("faiss")}


def test_every_environment_gets_one_faiss_build():
    base = _names(SETUP["install_requires"])
    assert not _faiss_builds(base), "faiss in install_requires: [gpu] would install two builds"
    extras = SETUP["extras_require"]
    for extra in ("cpu", "gpu", "dev"):
        assert len(_faiss_builds(base | _names(extras[extra]))) == 1, extra
    assert _faiss_builds(_names(extras["gpu"])).pop().startswith("faiss-gpu")
    assert _names(extras["cpu"]) == {"faiss-cpu"}
    # the build installed here (from [dev]) is the distribution of the module the code imports
    assert importlib.metadata.packages_distributions()["faiss"] == ["faiss-cpu"]


def _required_modules() -> set:
    """Modules sfsc.deploy imports through formats.require("...") (its optional packages)."""
    found = set()
    for name in os.listdir(DEPLOY):
        if name.endswith(".py"):
            with open(os.path.join(DEPLOY, name)) as f:
                tree = ast.parse(f.read())
            found |= {node.args[0].value for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "require"
                      and node.args and isinstance(node.args[0], ast.Constant)}
    return found


def test_export_extra_is_what_the_exporter_imports():
    modules = _required_modules()
    assert {"onnx", "onnxruntime"} <= modules
    providers = importlib.metadata.packages_distributions()
    wanted = {dist.lower() for m in modules for dist in providers[m]}
    assert _names(SETUP["extras_require"]["export"]) == wanted


def test_dev_extra_holds_what_make_test_needs():
    extras = SETUP["extras_require"]
    dev = _names(extras["dev"])
    assert _names(extras["cpu"]) | _names(extras["export"]) <= dev
    assert {"pytest", "pytest-xdist", "ruff"} <= dev


def _pip_commands():
    for readme in READMES:
        with open(os.path.join(ROOT, readme)) as f:
            for match in re.finditer(r"pip install[^`\n]*", f.read()):
                yield readme, match.group(0)


def test_readme_pip_commands_name_declared_extras_and_one_faiss():
    extras = SETUP["extras_require"]
    seen = 0
    for readme, command in _pip_commands():
        for listed in re.findall(r"\.\[([a-z0-9_,-]+)\]", command):
            seen += 1
            chosen = listed.split(",")
            assert set(chosen) <= set(extras), (readme, command)
            builds = set().union(*(_faiss_builds(_names(extras[e])) for e in chosen))
            assert len(builds) <= 1, (readme, command, builds)
    assert seen >= 3  # the install section names [cpu], [gpu] and [export]
