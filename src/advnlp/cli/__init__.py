"""The ``advnlp`` command: one module per subcommand (parse, validate, print; no training logic).

User mistakes exit with status 2 and one line on stderr naming the flag or file:line to fix
(argparse's own errors too: one line and a pointer to ``--help``, not the usage block);
a traceback means a bug in advnlp. SIGTERM and Ctrl-C end the command with one line, after
the atomic writes and the output lock have been cleaned up, so the same command resumes.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from ..errors import ClosureError, ConfigError, DataError, EmbeddingNotFoundError, UsageError
from . import attack, compare, demo, env, train

COMMANDS = {"train": train, "compare": compare, "attack": attack, "demo": demo, "env": env}
USER_ERRORS = (UsageError, DataError, ConfigError, EmbeddingNotFoundError, ClosureError)
# How to pick up after an interruption, per command.
RESUME_HINT = {
    "train": "run the same command with --resume to continue",
    "compare": "run the same command again to continue (finished runs are kept)",
    "demo": "run the same command again to continue (finished runs are kept)",
}


class CommandLineError(Exception):
    """A flag argparse could not parse; the message is the one line to print."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and atomic writes clean up."""


class Parser(argparse.ArgumentParser):
    """argparse, with each error as one line naming the flag (instead of the usage block)."""

    def error(self, message: str) -> NoReturn:
        # "argument --epsilon: ..." -> "--epsilon: ..."
        message = re.sub(r"\bargument ", "", message)
        raise CommandLineError(f"{self.prog}: error: {message}; see {self.prog} --help")


def parser() -> Parser:
    top = Parser(
        prog="advnlp",
        description="Embedding-space adversarial training (FGM, gradient penalty, PGD, FreeLB) "
        "for text classifiers: train, compare methods, see the effect.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub, name)
    return top


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    top = parser()
    args, unknown = top.parse_known_args(argv)
    if unknown:  # reported by the subcommand, so the line names it
        subcommands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        subcommands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception while the command runs (the default would kill the
    process mid-write, leaving temp files and the output lock behind)."""

    def stop(signum: int, frame: object) -> NoReturn:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def warnings_as_lines(command: str) -> Iterator[None]:
    """advnlp's logged warnings (e.g. a corrupt checkpoint skipped) as one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"advnlp {command}: warning: %(message)s"))
    logger = logging.getLogger("advnlp")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except CommandLineError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        with sigterm_raises(), warnings_as_lines(args.command):
            return args.run(args) or 0
    except USER_ERRORS as error:
        print(f"advnlp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        what = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
        hint = RESUME_HINT.get(args.command)
        print(f"advnlp {args.command}: {what}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
