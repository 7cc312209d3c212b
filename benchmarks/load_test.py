#!/usr/bin/env python
"""Load-test serve.py as a deployment would see it: a real HTTP client on localhost, real test
utterances, concurrent requests, tail latency.

    python benchmarks/load_test.py --data ../shared/data/massive-1.1 --locales en-US \
        --server "student int8=--model out/package" --server "teacher torch=--model out/teacher_torch" \
        --concurrency 1 8 32 64 --rate 500 --output load.json

Each --server "LABEL=serve.py flags" is started on a free port, waited for (GET /health), loaded,
then stopped with SIGTERM (its exit status is checked); --url tests a server that already runs.
Every server starts first; then a closed loop at each --concurrency (that many clients, each
sending its next request when the last is answered) and an open loop at each --rate (requests
sent on a fixed schedule whatever the answers, latency counted from the scheduled time, so a slow
server is not excused by a slowed client) run against each server in turn, level by level, for
--rounds rounds: drift on a noisy machine moves every server alike. Each level stops after
--requests requests or --seconds seconds, whichever is first; a row pools its rounds' latencies
and gives the median round's throughput. One request carries one utterance (--texts-per-request). The client runs on
the same machine and takes CPU from the server: the figures are of that arrangement.
"""
import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common.latency import cpu_name  # noqa: E402
from common.run import UsageError, positive_int, run_cli, write_json_atomic  # noqa: E402
from common.task_data import add_data_args, load_task_data  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", action="append", default=[], metavar="LABEL=FLAGS", help="serve.py flags to start")
    p.add_argument("--url", help="a server that already runs, e.g. http://127.0.0.1:8000")
    add_data_args(p, what="its test split: the utterances sent")
    p.add_argument("--concurrency", type=positive_int, nargs="*", default=[1, 8, 32, 64])
    p.add_argument("--rate", type=positive_int, nargs="*", default=[500], help="open-loop offered requests/s")
    p.add_argument("--requests", type=positive_int, default=2000, help="most requests per level and round")
    p.add_argument("--seconds", type=float, default=10.0, help="most seconds per level and round")
    p.add_argument("--rounds", type=positive_int, default=3, help="times every level runs against each server")
    p.add_argument("--warmup", type=int, default=100, help="requests sent before each server is measured")
    p.add_argument("--texts-per-request", type=positive_int, default=1)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as an error")
    p.add_argument("--startup-timeout", type=float, default=300.0)
    p.add_argument("--output", help="JSON of every level's figures")
    args = p.parse_args(argv)
    if bool(args.server) == bool(args.url):
        p.error("give --server LABEL=FLAGS (one or more) or --url, not both")
    if not args.data:
        p.error("--data is required: its test utterances are what the load test sends")
    for spec in args.server:
        if "=" not in spec or not spec.split("=", 1)[0].strip():
            p.error(f"argument --server: {spec!r} is not LABEL=serve.py flags")
    return args


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(flags, log_path, startup_timeout):
    """serve.py with these flags on a free port, once /health answers; (process, url)."""
    import urllib.request
    port = free_port()
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), *flags, "--port", str(port)], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + startup_timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise UsageError(f"serve.py {' '.join(flags)} stopped at startup (exit {process.returncode}): "
                             f"{last_line(log_path)}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    stop_server(process)
    raise UsageError(f"serve.py {' '.join(flags)}: no answer on /health within {startup_timeout:.0f} s ({log_path})")


def last_line(path):
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def stop_server(process, timeout=60):
    """SIGTERM, as a deployment stops it; its exit status."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


class Client:
    """One aiohttp session; post() gives (latency s from `since`, ok)."""

    def __init__(self, url, bodies, timeout, connections):
        import aiohttp
        self.url, self.bodies = url + "/predict", bodies
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                             timeout=aiohttp.ClientTimeout(total=timeout))
        self.sent = 0

    def next_body(self):
        body = self.bodies[self.sent % len(self.bodies)]
        self.sent += 1
        return body

    async def post(self, since=None):
        start = since or time.perf_counter()
        try:
            async with self.session.post(self.url, data=self.next_body(),
                                         headers={"content-type": "application/json"}) as response:
                await response.read()
                ok = response.status == 200
        except (OSError, asyncio.TimeoutError, Exception):  # noqa: BLE001  refused, reset, timed out: an error
            ok = False
        return time.perf_counter() - start, ok


async def closed_loop(client, concurrency, requests, seconds):
    latencies, errors, stop_at = [], 0, time.perf_counter() + seconds
    remaining = [requests]

    async def user():
        nonlocal errors
        while remaining[0] > 0 and time.perf_counter() < stop_at:
            remaining[0] -= 1
            latency, ok = await client.post()
            latencies.append(latency) if ok else None
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


async def open_loop(client, rate, requests, seconds):
    """Requests at their scheduled times; latency from the scheduled time (no coordinated omission)."""
    count = min(requests, max(1, int(rate * seconds)))
    start, tasks = time.perf_counter(), []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(client.post(since=scheduled)))
    results = await asyncio.gather(*tasks)
    latencies = [latency for latency, ok in results if ok]
    return latencies, count - len(latencies), time.perf_counter() - start


def figures(label, mode, level, runs):
    """One server at one level over its rounds: latency percentiles of every answered request,
    the median round's throughput, every error."""
    latencies = [x for latency, _, _ in runs for x in latency]
    ms = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    p50, p95, p99 = (round(float(x), 2) for x in np.percentile(ms, [50, 95, 99]))
    per_round = [round(len(latency) / elapsed, 1) for latency, _, elapsed in runs]
    errors = sum(e for _, e, _ in runs)
    return {"server": label, "mode": mode, "level": level, "requests": len(latencies) + errors, "errors": errors,
            "throughput_rps": float(np.median(per_round)), "throughput_rps_per_round": per_round,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


async def run_level(client, mode, level, args):
    if mode == "closed":
        return await closed_loop(client, level, args.requests, args.seconds)
    return await open_loop(client, level, args.requests, args.seconds)


async def measure(urls, bodies, args):
    """Every level, each server in turn, --rounds times: a machine that slows down during the run
    moves every server alike, so their ratios hold even when the figures drift."""
    clients = {label: Client(url, bodies, args.timeout, max(args.concurrency + [256])) for label, url in urls.items()}
    levels = [("closed", c) for c in args.concurrency] + [("open", r) for r in args.rate]
    runs = {(label, mode, level): [] for label in clients for mode, level in levels}
    try:
        for client in clients.values():
            await closed_loop(client, min(8, max(args.concurrency)), args.warmup, args.seconds)
        for round_number in range(args.rounds):
            for mode, level in levels:
                for label, client in clients.items():
                    runs[(label, mode, level)].append(await run_level(client, mode, level, args))
            print(f"round {round_number + 1} of {args.rounds} done", flush=True)
    finally:
        for client in clients.values():
            await client.session.close()
    return [figures(label, mode, level, r) for (label, mode, level), r in runs.items()]


def print_rows(rows):
    """The figures as a markdown table, a level's servers side by side."""
    print("| server | level | req/s (median round) | rounds' range | p50 ms | p95 ms | p99 ms | errors |\n"
          "|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["mode"], r["level"])):
        level = f"concurrency {row['level']}" if row["mode"] == "closed" else f"offered {row['level']}/s"
        spread = f"{min(row['throughput_rps_per_round']):.0f}-{max(row['throughput_rps_per_round']):.0f}"
        print(f"| {row['server']} | {level} | {row['throughput_rps']:.1f} | {spread} | {row['p50_ms']:.2f} "
              f"| {row['p95_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']}/{row['requests']} |", flush=True)


def request_bodies(args):
    texts = [u.text for u in load_task_data(args, "test")[0]]
    n = args.texts_per_request
    return [json.dumps({"texts": texts[i:i + n]}).encode() for i in range(0, len(texts) - n + 1, n)]


def main(argv=None):
    args = parse_args(argv)
    bodies = request_bodies(args)
    report = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "cores": os.cpu_count(),
              "python": platform.python_version(), "argv": sys.argv[1:] if argv is None else argv}
    logs = Path(args.output).parent if args.output else Path(tempfile.gettempdir())
    processes, urls = {}, {}
    try:
        for number, (label, flags) in enumerate(s.split("=", 1) for s in args.server):
            print(f"starting {label}: serve.py {flags}", flush=True)
            processes[label], urls[label] = start_server(flags.split(), logs / f"load_test.server{number}.log",
                                                         args.startup_timeout)
        urls = urls or {"url": args.url}
        report["rows"] = uvloop.run(measure(urls, bodies, args))
    finally:
        report["servers"] = [{"label": label, "flags": flags, "exit_code": stop_server(processes[label])}
                             for label, flags in (s.split("=", 1) for s in args.server) if label in processes]
    print_rows(report["rows"])
    for server in report["servers"]:
        if server["exit_code"] != 0:
            print(f"{server['label']}: serve.py exited {server['exit_code']} on SIGTERM", flush=True)
    if args.output:
        write_json_atomic(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
