"""The repository tracks no symlinks outside the bundle corpus: an sdist, a wheel or a Windows
checkout may not carry them (the schema and the CLIP merges are real files in sfmobile/data/;
the Kotlin build copies the merges from there, android_app/core/kotlin_env.sh and
build.gradle.kts). The corpus's two symlinks are its closure-rule cases (tests/golden/bundles:
a link leaving the bundle, one staying inside), test data and never shipped."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
CORPUS = "tests/golden/bundles/"


def test_no_tracked_symlinks():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    staged = subprocess.run(
        ["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    links = [line.split("\t", 1)[1] for line in staged.splitlines() if line.startswith("120000")]
    assert [link for link in links if not link.startswith(CORPUS)] == []
