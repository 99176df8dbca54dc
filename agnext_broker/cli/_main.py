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

    worker = commands.add_parser(
        "worker",
        help="host the agents an application registers, on RabbitMQ and Redis",
        description="Settings not given as flags come from AGNEXT_* environment variables.",
    )
    worker.add_argument(
        "--app", required=True, help="module:function that registers agents on the runtime"
    )
    worker.add_argument("--amqp-url", help="RabbitMQ URL (AGNEXT_AMQP_URL)")
    worker.add_argument("--redis-url", help="Redis URL (AGNEXT_REDIS_URL)")
    worker.add_argument("--namespace", help="name prefix of every queue and key (AGNEXT_NAMESPACE)")
    worker.add_argument("--partitions", type=int, help="partitions per new agent type")
    worker.add_argument("--worker-id", help="this worker's id (default: random)")
    worker.add_argument("--log-level", default="info", help="debug, info, warning, error")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        keys = [key.strip() for key in args.keys.split(",") if key.strip()]
        if not keys or args.items < 1:
            print("agnext-broker demo: give at least one key and --items >= 1", file=sys.stderr)
            return 2
        return asyncio.run(run_demo(keys, args.items, quiet=args.quiet))
    if args.command == "worker":
        from ._logging import configure
        from ._worker import worker_main

        configure(args.log_level)
        overrides = {
            "amqp_url": args.amqp_url,
            "redis_url": args.redis_url,
            "namespace": args.namespace,
            "partitions": args.partitions,
            "worker_id": args.worker_id,
        }
        return worker_main(args.app, overrides)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
