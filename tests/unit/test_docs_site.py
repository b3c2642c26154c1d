"""The docs site (mkdocs.yml over docs/) builds with --strict, so a broken link or a page missing from the nav fails
here; the front-door pages stay short and point only inside the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_site(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(root / "mkdocs.yml")]
    return subprocess.run([*command, "--site-dir", str(out)], capture_output=True, text=True, timeout=300, env=env)


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    built = build_site(REPO, tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(REPO / "docs", copy / "docs")
    page = copy / "docs" / "store.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the manifest](no-such-page.md).\n", encoding="utf-8")
    built = build_site(copy, tmp_path / "site")
    assert built.returncode != 0 and "no-such-page.md" in built.stderr


def front_door_pages() -> list[Path]:
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def test_no_page_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/work/|(?<![\w.])\.\./\.\./")
    for page in front_door_pages():
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            assert not outside.search(line), f"{page.relative_to(REPO)}:{number} points outside the repository"


def test_readme_links_resolve_and_it_stays_a_front_door() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme):
        if not re.match(r"[a-z]+://", target):
            assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"
