"""Write a folder's patch as ``git format-patch`` output, from edits made in a base repository.

    python -m upstream_prs.format_patch prepare FOLDER WORKDIR PATH...   # base repo with PATHs, ready to edit
    python -m upstream_prs.format_patch export FOLDER WORKDIR MESSAGE_FILE  # commit the edits, write the series

``MESSAGE_FILE`` holds the commit message (subject line, blank line, body). Each export commits the current
edits and rewrites FOLDER's ``*.patch`` as the whole series since the base (export again after more edits for
a ``0002-*.patch``). Commits are authored by :data:`AUTHOR` at a fixed date, so re-exporting unchanged edits
rewrites the same patches.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from upstream_prs.upstream import GIT_IDENTITY, base_repository

AUTHOR = ("Falcon-H1R plugin developers", "falcon-h1r-plugin@users.noreply.github.com")
DATE = "2026-11-29T12:00:00+00:00"


def export(folder: Path, repo: Path, message_file: Path) -> list[Path]:
    env = {
        **os.environ,
        **GIT_IDENTITY,
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_AUTHOR_DATE": DATE,
        "GIT_COMMITTER_DATE": DATE,
    }
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-F", str(message_file)], check=True, env=env)
    for old in folder.glob("*.patch"):
        old.unlink()
    base = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--max-parents=0", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    out = subprocess.run(
        ["git", "-C", str(repo), "format-patch", f"{base}..HEAD", "--no-signature", "--zero-commit"]
        + ["-o", str(folder.resolve())],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return [Path(line) for line in out.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare")
    prepare.add_argument("folder", type=Path)
    prepare.add_argument("workdir", type=Path)
    prepare.add_argument("paths", nargs="+")
    exporter = sub.add_parser("export")
    exporter.add_argument("folder", type=Path)
    exporter.add_argument("workdir", type=Path)
    exporter.add_argument("message_file", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        print(base_repository(args.folder, args.workdir, args.paths))
    else:
        print("\n".join(map(str, export(args.folder, args.workdir, args.message_file))))


if __name__ == "__main__":
    main()
