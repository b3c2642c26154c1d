"""NOTICE records every vendored file with its sha256: a file replaced or added without updating NOTICE fails."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "emtune" / "dashboard" / "static"
# The dashboard's own files there; everything else in the folder is vendored.
OWN = {"charts.js", "style.css"}


def recorded() -> dict[str, str]:
    text = (REPO / "NOTICE").read_text(encoding="utf-8")
    return dict(re.findall(r"^\s+(emtune/\S+)\s.*\n\s+sha256 ([0-9a-f]{64})$", text, re.M))


def test_notice_hashes_match_the_vendored_files() -> None:
    hashes = recorded()
    assert hashes, "NOTICE lists no vendored file"
    for path, digest in hashes.items():
        assert hashlib.sha256((REPO / path).read_bytes()).hexdigest() == digest, f"{path} differs from NOTICE"


def test_every_vendored_file_is_in_the_notice() -> None:
    vendored = {f"emtune/dashboard/static/{p.name}" for p in STATIC.iterdir() if p.is_file() and p.name not in OWN}
    assert vendored == set(recorded())
