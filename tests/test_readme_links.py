"""What the READMEs point to exists: every relative link's file and heading, and every folder of
the reference's repository layout, which names every benchmark folder."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ("README.md", "projects/SFSC/README.md", "benchmarks/README.md",
           "benchmarks/gallery_index/README.md")
REFERENCE = "projects/SFSC/README.md"


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def _prose(text: str) -> str:
    """``text`` without fenced code blocks."""
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.DOTALL | re.MULTILINE)


def _anchors(path: str) -> set:
    """GitHub's heading anchors of a markdown file."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", _prose(_read(path)), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
        out.add(slug.replace(" ", "-"))
    return out


def _links():
    for readme in READMES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(_read(readme))):
            if not re.match(r"^[a-z]+://", target):
                yield pytest.param(readme, target, id=f"{readme} -> {target}")


@pytest.mark.parametrize("readme,target", list(_links()))
def test_relative_link_resolves(readme, target):
    path, _, anchor = target.partition("#")
    resolved = os.path.normpath(os.path.join(os.path.dirname(readme), path)) if path else readme
    assert os.path.exists(os.path.join(ROOT, resolved)), f"{resolved} does not exist"
    if anchor:
        assert resolved.endswith(".md"), f"an anchor into {resolved}"
        assert anchor in _anchors(resolved), f"{resolved} has no heading #{anchor}"


def _layout_paths():
    """Paths the reference's "Repository layout" block names (indented: inside the last
    folder above them)."""
    text = _read(REFERENCE)
    block = re.search(r"^### Repository layout\n+```\n(.*?)^```", text,
                      flags=re.DOTALL | re.MULTILINE)
    assert block, "no Repository layout block"
    parent, paths = "", []
    for line in block.group(1).splitlines():
        name = line.split()[0] if line.strip() and not line.startswith(" " * 20) else ""
        if not name:
            continue
        if line.startswith(" "):
            paths.append(parent + name)
        else:
            names = [n.strip() for n in line[:24].split(",")] if "," in line[:24] else [name]
            paths.extend(names)
            parent = name if name.endswith("/") else parent
    return paths


def test_layout_names_existing_paths_and_every_benchmark_folder():
    paths = _layout_paths()
    missing = [p for p in paths if not os.path.exists(os.path.join(ROOT, p))]
    assert missing == []
    folders = {f"benchmarks/{d}/" for d in os.listdir(os.path.join(ROOT, "benchmarks"))
               if os.path.isdir(os.path.join(ROOT, "benchmarks", d))}
    assert sorted(folders - set(paths)) == []
