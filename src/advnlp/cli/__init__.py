"""The ``advnlp`` command: one module per subcommand (parse, validate, print; no training logic).

User mistakes exit with status 2 and one line on stderr naming the flag or file:line to fix;
a traceback means a bug in advnlp.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ClosureError, ConfigError, DataError, EmbeddingNotFoundError, UsageError
from . import attack, compare, demo, env, train

COMMANDS = {"train": train, "compare": compare, "attack": attack, "demo": demo, "env": env}
USER_ERRORS = (UsageError, DataError, ConfigError, EmbeddingNotFoundError, ClosureError)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="advnlp",
        description="Embedding-space adversarial training (FGM, gradient penalty, PGD, FreeLB) "
        "for text classifiers: train, compare methods, see the effect.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub, name)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except USER_ERRORS as error:
        print(f"advnlp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"advnlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
