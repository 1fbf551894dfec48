"""Scale-out on PostgreSQL: polls with two worker processes against one, creates against SQLite.

Each gateway gets a database of its own (a fresh PostgreSQL database, or a fresh SQLite file)
and the same fast fake upstream. Polls are run.py's poll bench (serial p50, wrk at 20 and
100 connections) against ``gateway serve`` with one worker and with ``--workers 2``; creates
are the SDK's multipart body under ``wrk -c10``, one worker on each database.

    python bench/scaleout.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from postgres import fresh_database
from run import (
    Target,
    bench_polls,
    fake_upstream,
    gateway,
    multipart_script,
    serial_p50_ms,
    setup_gateway_token,
    stop,
    wrk,
)

FORM = {"prompt": (None, "bench"), "model": (None, "sora-2"), "seconds": (None, "4"),
        "size": (None, "720x1280")}


@contextmanager
def served(workdir: Path, upstream: str, name: str, *, workers: int = 1,
           database_url: str | None = None) -> Iterator[Target]:
    url, process = gateway(workdir, [upstream], workers=workers, database_url=database_url)
    try:
        yield Target(name, url, setup_gateway_token(url), process.pid)
    finally:
        stop(process)


def creates(target: Target, workdir: Path, seconds: float) -> dict[str, Any]:
    def post(client: httpx.Client) -> None:
        client.post(f"{target.url}/v1/videos", headers=target.headers,
                    files=FORM).raise_for_status()

    return {"serial_p50_ms": serial_p50_ms(post, 100),
            "c10": wrk(f"{target.url}/v1/videos", target.headers, 10, seconds,
                       multipart_script(workdir, None))}


def bench_scaleout(workdir: Path, seconds: float) -> dict[str, Any]:
    upstream, fake = fake_upstream(workdir)
    results: dict[str, Any] = {"polls": {}, "creates": {}}
    try:
        for workers in (1, 2):
            name = f"postgresql, {workers} worker{'s' if workers > 1 else ''}"
            with fresh_database() as db, served(workdir, upstream, name, workers=workers,
                                                database_url=db) as target:
                results["polls"].update(bench_polls([target], seconds))
        # Creates on fresh gateways: the polls' gateways keep polling what they created.
        with served(workdir, upstream, "sqlite") as target:
            results["creates"]["sqlite"] = creates(target, workdir, seconds)
        with fresh_database() as db, served(workdir, upstream, "postgresql",
                                            database_url=db) as target:
            results["creates"]["postgresql"] = creates(target, workdir, seconds)
    finally:
        stop(fake)
    one, two = (results["polls"][f"postgresql, {n}"] for n in ("1 worker", "2 workers"))
    results["poll_ratio"] = {c: two[c]["rps"] / one[c]["rps"] for c in ("c20", "c100")}
    results["create_share"] = (results["creates"]["postgresql"]["c10"]["rps"]
                               / results["creates"]["sqlite"]["c10"]["rps"])
    return results


def short(measured: float, target: float, unit: str) -> str:
    """How far below a floor the measurement fell, if it did."""
    return f" ({target - measured:.2f}{unit} short)" if measured < target else ""


def checks(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = [(f"PostgreSQL polls at {c[1:]} clients, 2 workers >= 1.8x one",
             f"{ratio:.2f}x" + short(ratio, 1.8, "x"), ratio >= 1.8)
            for c, ratio in result["poll_ratio"].items()]
    share = result["create_share"] * 100
    rows.append(("PostgreSQL creates per process >= 50 % of SQLite's",
                 f"{share:.0f} %" + short(share, 50, " points"), share >= 50))
    return rows


def lines(result: dict[str, Any]) -> list[str]:
    out = ["## Scale-out on PostgreSQL\n",
           "| gateway | serial p50 ms | c20 req/s | c20 p50 / p99 ms | c100 req/s |"
           " c100 p50 / p99 ms |", "|---|---|---|---|---|---|"]
    for name, row in result["polls"].items():
        out.append(f"| {name} | {row['serial_p50_ms']:.2f} | {row['c20']['rps']:,.1f} | "
                   f"{row['c20'].get('p50_ms', 0):.2f} / {row['c20'].get('p99_ms', 0):.2f} | "
                   f"{row['c100']['rps']:,.1f} | {row['c100'].get('p50_ms', 0):.2f} / "
                   f"{row['c100'].get('p99_ms', 0):.2f} |")
    out += ["", "| creates, one process | serial p50 ms | c10 req/s |", "|---|---|---|"]
    for name, row in result["creates"].items():
        out.append(f"| {name} | {row['serial_p50_ms']:.2f} | {row['c10']['rps']:,.1f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-scaleout-"))
    result = bench_scaleout(workdir, 3 if args.quick else 10)
    print("\n".join(lines(result)))
    for target, measured, met in checks(result):
        print(f"{target}: {measured} ({'met' if met else 'MISSED'})")


if __name__ == "__main__":
    main()
