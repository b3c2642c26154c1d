"""The layering in CONTRIBUTING.md ("Layering"): an import only points down this list, and no two packages import
each other."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Bottom to top; modules on one line are peers (they may import each other, but never in a loop).
LAYERS = [
    ("__init__", "errors", "fsutil", "interrupts", "faults", "deadlines", "config", "s3client"),
    ("data", "model", "losses"),
    ("store",),
    ("train",),
    ("evaluate",),
    ("promote",),
    ("report",),
    ("cluster",),
    ("pipeline",),
    ("components", "workflows"),
    ("runs",),
    ("dashboard",),
    ("bench", "cli", "__main__"),
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def top_level_imports(root: Path = REPO) -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, where) for every absolute `emtune.*` import in the installed tree."""
    found = []
    for folder, unit_of in (
        (root / "emtune", lambda parts: parts[0].removesuffix(".py")),
        (root / "components", lambda parts: "components"),
        (root / "workflows", lambda parts: "workflows"),
    ):
        for path in sorted(folder.rglob("*.py")):
            source = unit_of(path.relative_to(folder).parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "emtune" and len(parts) > 1 and parts[1] != source:
                        found.append((source, parts[1], f"{path.relative_to(root)}:{node.lineno}"))
    return found


def test_every_unit_has_a_layer() -> None:
    units = {source for source, _, _ in top_level_imports()} | {target for _, target, _ in top_level_imports()}
    assert units <= set(LEVEL), f"place these in LAYERS: {sorted(units - set(LEVEL))}"


def upward_imports(root: Path = REPO) -> list[str]:
    return [
        f"{where}: {source} imports emtune.{target}"
        for source, target, where in top_level_imports(root)
        if LEVEL.get(target, -1) > LEVEL.get(source, -1)
    ]


def test_no_import_runs_up_a_layer() -> None:
    upward = upward_imports()
    assert not upward, "imports that run back up (CONTRIBUTING.md, Layering):\n" + "\n".join(upward)


def test_no_two_packages_import_each_other() -> None:
    edges = {(source, target) for source, target, _ in top_level_imports()}
    loops = [f"{a} <-> {b}" for a, b in itertools.combinations(sorted(LEVEL), 2) if {(a, b), (b, a)} <= edges]
    assert not loops, f"package cycles: {loops}"


def test_the_scan_sees_an_upward_import(tmp_path: Path) -> None:
    """The checks above would pass vacuously if the scan saw nothing: a planted upward import is reported."""
    (tmp_path / "emtune" / "store").mkdir(parents=True)
    (tmp_path / "emtune" / "store" / "planted.py").write_text("from emtune.train.trainer import Trainer\n")
    (tmp_path / "emtune" / "train").mkdir()
    (tmp_path / "emtune" / "train" / "ok.py").write_text("import emtune.store.base\n")
    assert upward_imports(tmp_path) == ["emtune/store/planted.py:1: store imports emtune.train"]
