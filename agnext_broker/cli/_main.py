from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._demo import run_demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agnext-broker",
        description="Multi-agent applications on autogen-core's API, standalone or on a broker.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run the tally example on the standalone runtime and show what happens"
    )
    demo.add_argument(
        "--keys",
        default="alpha,beta,gamma",
        help="comma-separated keys; one tallier agent per key (default: %(default)s)",
    )
    demo.add_argument(
        "--items", type=int, default=4, help="work items per key (default: %(default)s)"
    )
    demo.add_argument("--quiet", action="store_true", help="print only the final report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        keys = [key.strip() for key in args.keys.split(",") if key.strip()]
        if not keys or args.items < 1:
            print("agnext-broker demo: give at least one key and --items >= 1", file=sys.stderr)
            return 2
        return asyncio.run(run_demo(keys, args.items, quiet=args.quiet))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
