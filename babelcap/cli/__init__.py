"""The ``babelcap`` command. Each subcommand lives in its own module here and imports its stage
lazily, so ``--help`` and the client work without torch or vLLM installed. This package sits on
top of every other: it may import them all, and none imports it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from babelcap.cli import caption, demo, models, serving, translate
from babelcap.core.errors import EXIT_INTERRUPTED, BabelcapError

__all__ = ["main"]

_Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """A command-line mistake is one line on stderr and exit status 2, like every other bad
    setting (argparse's default prints the whole usage first, dozens of lines for caption)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="babelcap",
        description=(
            "Caption images and videos in bulk, in any of the 200 FLORES-200 languages, "
            "at the speed of a vLLM server."
        ),
        epilog=(
            "exit status: 0 done, 1 some work failed, 2 bad settings, 3 no server answered, "
            "4 a model server could not start, 130 interrupted"
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for module in (demo, serving, caption, models, translate):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``babelcap`` command line; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    handler: _Handler = args.handler
    try:
        return handler(args)
    except BabelcapError as error:
        sys.stderr.write(f"babelcap {args.command}: error: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"babelcap {args.command}: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
