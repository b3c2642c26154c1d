"""The run-parameter inputs of the KFP components, written out in their source (`components/*.py`).

KFP reads a lightweight component's inputs from its function's signature and ships the function's source to the
pod, so each component that resolves the run's config spells out every run parameter (one per config key, see
`emtune.pipeline.params.param_specs`) as an input of its own. The lines between the two marker comments are
generated from the config model: `make docs` rewrites them, and a test fails when they are stale.

    python -m emtune.pipeline.component_inputs components           # rewrite the stale blocks
    python -m emtune.pipeline.component_inputs --check components   # exit 1 when a block is stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from emtune.pipeline.params import param_specs

START = "# Run parameters, one per config key: generated from the config model by `make docs`."
END = "# End of run parameters."


def input_lines(indent: str) -> list[str]:
    """One `name: type,` line per run parameter, as KFP types it (optional values travel as text)."""
    return [f"{indent}{spec.name}: {spec.kfp_type.__name__},\n" for spec in param_specs()]


def render(source: str, where: str = "<source>") -> str:
    """`source` (a component module) with every run-parameter block regenerated; unchanged without markers."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        out.append(line)
        position += 1
        if line.strip() != START:
            continue
        end = next((i for i in range(position, len(lines)) if lines[i].strip() == END), None)
        if end is None:
            raise ValueError(f"{where}: a run-parameter block opens at line {position} and never closes ({END!r})")
        out += input_lines(line[: len(line) - len(line.lstrip())])
        position = end
    return "".join(out)


def stale_modules(folder: Path, *, write: bool) -> list[Path]:
    """The modules in `folder` whose run-parameter block is stale, rewritten in place when `write`."""
    stale = []
    for path in sorted(folder.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        fresh = render(text, str(path))
        if fresh != text:
            stale.append(path)
            if write:
                path.write_text(fresh, encoding="utf-8")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the components' run-parameter inputs.")
    parser.add_argument("folder", type=Path, help="the components folder")
    parser.add_argument("--check", action="store_true", help="only report stale modules (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = stale_modules(args.folder, write=not args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
