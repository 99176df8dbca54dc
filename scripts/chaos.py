#!/usr/bin/env python
"""The fault matrix, measured: every scenario of ../shared/RELIABILITY.md that this project
proves itself against, on private RabbitMQ and Redis servers with three worker processes.

    .venv/bin/python scripts/chaos.py                 # every row, full loads (~15 minutes)
    .venv/bin/python scripts/chaos.py --quick         # shorter loads
    .venv/bin/python scripts/chaos.py --rows 1,3,12   # some rows
    .venv/bin/python scripts/chaos.py --json          # one JSON object per row, at the end
    .venv/bin/python scripts/chaos.py --rows 3c,3o --before ../before
        # rows 3c and 3o (the tally example, SIGTERM) and 19b (a caller's burst) also with the
        # package of another checkout, e.g. `git worktree add ../before <commit>`: a baseline
        # measured in the same run

Each row prints as it finishes: messages sent (confirmed or answered), handled (handler runs,
re-runs included), effects (distinct messages applied), duplicates (applied twice: must be 0),
dead-lettered, lost (sent but not applied: must be 0), failed calls (never got through although
retried with the same message id: must be 0), and the time to recover after the fault.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.harness import Outcome
from tests.chaos.scenarios import SCENARIOS, Env
from tests.servers import RabbitMQServer, RedisServer

COLUMNS = (
    ("row", 4),
    ("scenario", 52),
    ("sent", 6),
    ("handled", 8),
    ("effects", 8),
    ("dups", 5),
    ("dead", 5),
    ("lost", 5),
    ("failed", 7),
    ("recover s", 9),
)


def _line(values: list[str]) -> str:
    return " ".join(
        v.ljust(width)[:width] if i == 1 else v.rjust(width)
        for i, (v, (_, width)) in enumerate(zip(values, COLUMNS, strict=True))
    )


def _cells(outcome: Outcome) -> list[str]:
    recover = "-" if outcome.recovery_s is None else f"{outcome.recovery_s:.2f}"
    return [
        outcome.row,
        outcome.name,
        str(outcome.sent),
        str(outcome.handled),
        str(outcome.effects),
        str(outcome.duplicates),
        str(outcome.dead_lettered),
        str(outcome.lost),
        str(outcome.failed_calls),
        recover,
    ]


BASELINE_ROWS = ("3c", "3o", "19b")


async def run(rows: list[str], quick: bool, as_json: bool, before: Path | None) -> int:
    with tempfile.TemporaryDirectory(prefix="agnext-chaos-") as work:
        print("starting private RabbitMQ and Redis ...", file=sys.stderr, flush=True)
        rabbitmq = RabbitMQServer()
        redis_server = RedisServer()
        try:
            await rabbitmq.astart()
            await redis_server.astart()
            env = Env(rabbitmq, redis_server, Path(work) / "runs", quick=quick)
            outcomes: list[Outcome] = []
            if not as_json:
                print(_line([name for name, _ in COLUMNS]))
            runs = [(number, env) for number in rows]
            if before is not None:
                baseline = Env(rabbitmq, redis_server, env.work_dir, quick=quick, repo=before)
                runs += [(number, baseline) for number in rows if number in BASELINE_ROWS]
            for number, run_env in runs:
                name, scenario = SCENARIOS[number]
                label = "" if run_env is env else f" (workers of {run_env.repo})"
                print(f"row {number}: {name}{label} ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                outcome = await scenario(run_env)
                outcome.notes["scenario s"] = round(time.monotonic() - began, 1)
                if label:
                    outcome.row += "*"
                    outcome.notes["workers of"] = str(run_env.repo)
                else:
                    outcomes.append(outcome)  # a baseline is measured, not judged
                await rabbitmq.aensure_running()
                await redis_server.aensure_running()
                if as_json:
                    print(json.dumps({**vars(outcome), "clean": outcome.clean}), flush=True)
                else:
                    print(_line(_cells(outcome)), flush=True)
                    notes = ", ".join(f"{k}: {v}" for k, v in outcome.notes.items())
                    print(f"{'':5}{notes}", flush=True)
            dirty = [o.row for o in outcomes if not o.clean]
            if dirty:
                print(f"rows with losses, duplicates or failed calls: {dirty}", file=sys.stderr)
                return 1
            return 0
        finally:
            redis_server.close()
            rabbitmq.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", help=f"comma-separated rows (default: {','.join(SCENARIOS)})")
    parser.add_argument("--quick", action="store_true", help="shorter loads")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout: rows 3c, 3o and 19b run with its package too (a baseline)",
    )
    args = parser.parse_args()
    # The faults make the client libraries of this process log every lost connection; the
    # table says what matters.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("aio_pika", "aiormq", "agnext_broker"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    rows = args.rows.split(",") if args.rows else list(SCENARIOS)
    unknown = [r for r in rows if r not in SCENARIOS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(SCENARIOS)}")
    return asyncio.run(run(rows, args.quick, args.json, args.before))


if __name__ == "__main__":
    sys.exit(main())
