"""Print the requirements the installed emtune declares for some extras, less the packages named by --without.

The dashboard image installs emtune with --no-deps, then these: its commands import neither torch nor the rest of
the training stack, which would add gigabytes. Runs in the image before anything else is installed, so it uses
pip's own copy of `packaging`.
"""

from __future__ import annotations

import argparse
from importlib.metadata import requires

from pip._vendor.packaging.requirements import Requirement


def wanted(dist: str, extras: set[str], without: set[str]) -> list[str]:
    """The requirements of `dist` with `extras` (following self-references such as emtune[all]), minus `without`."""
    out: list[str] = []
    for line in requires(dist) or []:
        req = Requirement(line)
        if req.marker and not any(req.marker.evaluate({"extra": extra}) for extra in extras | {""}):
            continue
        if req.name == dist:
            out += wanted(dist, set(req.extras), without)
        elif req.name.lower() not in without:
            req.marker = None
            out.append(str(req))
    return sorted(set(out))


def names(text: str) -> set[str]:
    return {part.strip().lower() for part in text.split(",") if part.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", default="emtune")
    parser.add_argument("--extras", default="", help="comma-separated extras")
    parser.add_argument("--without", default="", help="comma-separated distribution names to leave out")
    args = parser.parse_args()
    for req in wanted(args.dist, names(args.extras), names(args.without)):
        print(req)


if __name__ == "__main__":
    main()
