"""The ``falcon-h1r`` command.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers) -> None``, which registers its parser and sets
``func(args) -> int`` as the default. Modules are discovered, so adding a
command never means editing this file.

Errors a user can fix (a bad flag, a missing or empty file, a malformed row) are
reported the way argparse reports a bad flag: one line on stderr,
``falcon-h1r <command>: error: <cause>``, exit status 2, no traceback. A subcommand
raises :class:`CliError` (or lets ``MalformedRowError`` / a missing-file ``OSError``
through) and :func:`main` does the rest; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
import sys

from verl_falcon_plugin.requires import MissingDependencyError

logger = logging.getLogger("falcon_h1r.cli")

USAGE_ERROR = 2
MISSING_DEPENDENCY = 1
INTERRUPTED = 130

#: OSErrors that mean "the path the user gave is wrong", not "the program is wrong"
_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class CliError(Exception):
    """A usage or input error: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """Plain-text help from reST docstrings; remembers which (sub)command parser ran, so an error
    names the command and its flags."""

    def __init__(self, *args, **kwargs):
        for key in ("description", "epilog"):
            if kwargs.get(key):
                kwargs[key] = plain_text(kwargs[key])
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, "_parser"):  # the innermost subparser finishes first
            namespace._parser = self
        return namespace, extras

    def error(self, message: str):  # the cause first and alone, not under a screenful of usage
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


_REST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :class:`X` -> X
_REST_LITERAL = re.compile(r"``([^`]+)``")  # ``x`` -> x


def plain_text(doc: str) -> str:
    """A module docstring as --help shows it: reST inline markup removed (descriptions are docstrings)."""
    return _REST_LITERAL.sub(r"\1", _REST_ROLE.sub(r"\1", doc))


def input_file_or_empty(path: str) -> str:
    """argparse ``type=`` for an input file that must exist and be a readable file."""
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{path}: not readable (permission denied)")
    return path


def input_file(path: str) -> str:
    """argparse ``type=`` for an input file that must exist and hold at least one non-blank line."""
    input_file_or_empty(path)
    if not _has_content(path):
        raise argparse.ArgumentTypeError(f"{path}: empty file (no rows); check the previous step's output")
    return path


def positive_int(text: str) -> int:
    """argparse ``type=`` for a count or size that must be >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be a whole number >= 1")
    return value


def port_number(text: str) -> int:
    """argparse ``type=`` for a TCP port (0: any free port)."""
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: a port is 0-65535 (0: any free port)")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None


def _has_content(path: str, chunk: int = 1 << 16) -> bool:
    with open(path, "rb") as f:  # stops at the first non-blank chunk: cheap on a huge file
        while block := f.read(chunk):
            if block.strip():
                return True
    return False


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="falcon-h1r",
        description="Falcon-H1R plugins for verl, Liger, vLLM and transformers.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse: usage errors -> stderr, exit 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    prog = args._parser.prog
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except SystemExit as stop:
        if isinstance(stop.code, str):  # `raise SystemExit("message")`: a usage error, reported as one
            return _report(prog, stop.code)
        raise
    except MissingDependencyError as err:  # the environment's to fix: one line with the pip install line
        return _report(prog, str(err), MISSING_DEPENDENCY)
    except Exception as err:
        cause = user_error_message(err, args)
        if cause is None:
            raise
        return _report(prog, cause)


def user_error_message(err: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line cause when ``err`` is the user's to fix, else None (a bug: keep the traceback)."""
    from verl_falcon_plugin.data.jsonl_io import MalformedRowError

    if isinstance(err, (CliError, MalformedRowError)):
        return str(err)
    if isinstance(err, _PATH_ERRORS) and err.filename is not None:
        flag = _flag_holding(args, os.fspath(err.filename))
        where = f"{flag} {err.filename}" if flag else str(err.filename)
        return f"{where}: {err.strerror or err}"
    return None


def _flag_holding(args: argparse.Namespace, path: str) -> str | None:
    """The flag (``--rollouts``) or positional (``INPUT.jsonl``) whose value is ``path``, as --help shows it."""
    parser = getattr(args, "_parser", None)
    for action in parser._actions if parser else ():
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, (str, os.PathLike)) and os.fspath(v) == path for v in values):
            return max(action.option_strings, key=len) if action.option_strings else (action.metavar or action.dest)
    return None


def _report(prog: str, cause: str, status: int = USAGE_ERROR) -> int:
    logger.debug("the error in full (shown with -v)", exc_info=True)
    first, *rest = str(cause).strip().splitlines() or [""]
    print(f"{prog}: error: {first}", file=sys.stderr)
    for line in rest:  # a cause should be one line; never drop what it said
        print(f"  {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
