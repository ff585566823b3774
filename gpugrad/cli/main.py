"""``gpugrad``: the command-line entry point (pyproject's ``gpugrad = "gpugrad.cli.main:main"``).

Each subcommand lives in its own module, named in :data:`SUBCOMMANDS`. A module either provides
``add_parser(subparsers)``, which adds its subparser and sets ``handler=`` (a function of the
parsed arguments returning the exit status), or ``HELP``, ``add_arguments(parser)`` and
``run(args)``.

Usage errors and missing optional dependencies (a ``UsageError``, from gpugrad.cli or a
subcommand's own class of that name, or a ``DeviceError``) print one line on stderr and exit
with status 2, no traceback.

Example::

    gpugrad bench --quick --json bench.json
    gpugrad info
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from gpugrad.cli import UsageError

# (subcommand, module): see the module docstring for what the module provides.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("train", "gpugrad.cli.train"),
    ("bench", "gpugrad.cli.bench"),
    ("info", "gpugrad.cli.info"),
]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and status 2 (argparse's own code)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand of :data:`SUBCOMMANDS`."""
    import gpugrad

    parser = _Parser(prog="gpugrad", description="gpugrad: automatic differentiation on NumPy and CuPy.")
    parser.add_argument("--version", action="version", version=f"gpugrad {gpugrad.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
        else:
            p = sub.add_parser(name, help=module.HELP, description=module.__doc__.split("\n\n")[0])
            module.add_arguments(p)
            p.set_defaults(handler=module.run)
    return parser


def _is_usage_error(exc: BaseException) -> bool:
    from gpugrad.errors import DeviceError

    return isinstance(exc, (UsageError, DeviceError)) or type(exc).__name__ == "UsageError"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run the subcommand; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args._argv = " ".join(["gpugrad", *argv])
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        sys.stderr.write(f"gpugrad {args.command}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"gpugrad {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (gpugrad info | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
