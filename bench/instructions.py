"""CPU instructions per prediction request, counted by valgrind: a measure load cannot move.

Run: .venv/bin/python bench/instructions.py [--tables adult wide] [--old PATH/src]
     [--concurrency 32]
Needs: valgrind (apt-get install -y valgrind); adult (../shared/data/adult) is skipped when
absent, the wide table is generated.

Timings on this 2-core machine move by 20-40 % from one run to the next (other virtual machines,
`hey` sharing the cores), more than most single changes save. So this counts instructions
instead: the real app (``create_app``, defaults on: an API key sent, metering, the access log)
answers 1-row simple JSON and OIP v2 JSON requests as direct ASGI calls (as in
bench/profile_request.py: no socket, no uvicorn) from ``--concurrency`` callers at once, each
sending its next request when the last is answered, as `hey -c 32` does, so the batcher merges
them as it does under load (``--concurrency 1``: one after another, each request running
onnxruntime for its one row alone). Model calls stay inline on the event loop as at full speed
(valgrind slows everything ~50x, which would otherwise send them to the batcher's thread). The
count is the event loop's thread only (threads that wait in spin loops are not the app's work),
for two runs of ``FEW`` and ``MANY`` requests per caller; their difference divided by the
requests between them is the cost of one request, start-up excluded. ``--old`` counts an older source tree in the same run, for before/after:
``git archive OLD src | tar -x -C /tmp/old && ... --old /tmp/old/src``. Repeated runs of one
tree agree within ~4 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import BIN, BUDGETS, OUT, create_key, present, table, train_table
from profile_request import JSON, OIP, Case, Harness, lifespan, log_to_file

FEW, MANY = 10, 50
"""Requests per caller in the two counted runs."""


def prepare(names: list[str]) -> dict:
    """A store with a model per table and a key; the rows each request sends."""
    home = OUT / "instructions-home"
    shutil.rmtree(home, ignore_errors=True)
    rows = {}
    for name in names:
        X, y = table(name)
        train_table(home, name, X, y, BUDGETS[name])
        rows[name] = json.loads(X.dropna().head(1).to_json(orient="records"))
    return {"home": str(home), "key": create_key(home), "rows": rows}


def count(setup: Path, case: Case, requests: int, callers: int, source: str | None) -> int:
    """Instructions the event loop's thread executed for a whole child run."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind"
        command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--dump-instr=no"]
        command += [f"--callgrind-out-file={out}", str(BIN / "python"), __file__, "--child"]
        command += [str(setup), case.table, case.protocol, str(requests), str(callers)]
        env = {**os.environ, "PYTHONPATH": source} if source else dict(os.environ)
        subprocess.run(command, env=env, check=True, capture_output=True)
        main_thread = Path(f"{out}-01").read_text()
    return next(
        int(line.split()[1]) for line in main_thread.splitlines() if line.startswith("totals:")
    )


def per_request(setup: Path, case: Case, callers: int, source: str | None) -> float:
    few, many = (count(setup, case, n, callers, source) for n in (FEW, MANY))
    return (many - few) / ((MANY - FEW) * callers)


async def child(setup: dict, case: Case, requests: int, callers: int) -> None:
    """Answer ``requests`` requests of ``case`` from each of ``callers``, nothing else on the
    loop."""
    import modelport.serve.app as app_module
    from modelport.config import Settings

    app_module.FLUSH_SECONDS = 3600  # the access log's timer: lines are written at BATCH_LINES
    log_to_file(Path(setup["home"]) / "access.log")
    settings = Settings(
        home=setup["home"],
        poll_interval=3600,
        meter_flush_seconds=3600,
        batch_inline_below_ms=1000,
    )
    app = app_module.create_app(settings)
    queue: asyncio.Queue = asyncio.Queue()
    task = await lifespan(app, queue)
    body = case.body(setup["rows"][case.table])

    async def caller() -> None:
        harness = Harness(app, case.path, body, setup["key"])
        for _ in range(requests):
            await harness.once()
            if harness.status != 200:
                raise RuntimeError(f"{case.path} answered {harness.status}: {harness.answer[:300]}")

    await asyncio.gather(*(caller() for _ in range(callers)))
    await queue.put({"type": "lifespan.shutdown"})
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=["adult", "wide"])
    parser.add_argument("--old", help="an older modelport source tree (its src folder)")
    parser.add_argument("--concurrency", type=int, default=32, help="callers at once")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, name, protocol, requests, callers = args.child
        setup = json.loads(Path(path).read_text())
        asyncio.run(child(setup, Case(name, protocol, 1), int(requests), int(callers)))
        return
    if shutil.which("valgrind") is None:
        sys.exit("skipped: needs valgrind (apt-get install -y valgrind)")
    names = present(args.tables)
    if not names:
        sys.exit("skipped: no table to serve")
    setup = OUT / "instructions-setup.json"
    setup.write_text(json.dumps(prepare(names)))
    cases = [Case(name, protocol, 1) for name in names for protocol in (JSON, OIP)]
    trees = {"this tree": None} | ({"--old": args.old} if args.old else {})
    jobs = [(case, tree, source) for case in cases for tree, source in trees.items()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # counts ignore load
        found = pool.map(lambda job: per_request(setup, job[0], args.concurrency, job[2]), jobs)
        counted = {(case, tree): n for (case, tree, _), n in zip(jobs, found, strict=True)}
    print(
        f"Instructions per 1-row request, {args.concurrency} callers at once (event loop thread, "
        "valgrind callgrind):\n"
    )
    print("| table | protocol | " + " | ".join(trees) + (" | change |" if args.old else ""))
    print("|---|---|" + "---|" * (len(trees) + bool(args.old)))
    for case in cases:
        now = counted[(case, "this tree")]
        line = f"| {case.table} | {case.protocol} | {now:,.0f} |"
        if args.old:
            old = counted[(case, "--old")]
            line += f" {old:,.0f} | {100 * (now - old) / old:+.1f} % |"
        print(line)


if __name__ == "__main__":
    main()
