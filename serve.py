#!/usr/bin/env python
"""Serve an exported model or a package.py package over HTTP (JSON), with dynamic micro-batching.

    python serve.py --model out/export/package --port 8000
    curl -s localhost:8000/predict -d '{"texts": ["wake me up at seven am"]}'
    -> {"predictions":[{"domain":"alarm","intent":"alarm_set","slots":[{"type":"time","text":"seven am",...}]}]}

POST /predict takes {"texts": [...]} and answers {"predictions": [...]}, one record per text, as
the Predictor gives them (common.onnx_models); GET /health answers 200 once the model is loaded.
A bad request gets a 4xx with {"error": "<one line>"}. Requests that queued while the model ran
go into its next call, at most --max-batch texts (--max-batch 1: each request alone); with
--max-wait-ms W a batch also waits up to W ms for more. --workers N processes each load the model with --threads ONNX Runtime
threads. SIGTERM (or Ctrl-C) stops taking connections, answers the requests in flight, exits 0.
A finetuned PyTorch folder, or a `package.py --variant torch` package, is served the same way:
the baseline of benchmarks/load_test.py.
"""
import contextlib
import json
import os
import signal
import sys

from common.inference import Predictor
from common.pipeline import checked_folder
from common.run import ArgumentParser, UsageError, non_negative_int, positive_int, run_cli
from common.serving import SETTINGS_ENV, build_app


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="export.py fp32/ or int8/ folder, a package.py folder, or a "
                                                   "finetuned PyTorch folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=non_negative_int, default=8000)
    # On 2 cores, 2 x 1 served 1.7x the requests of 1 x 2 at concurrency 64, and its p99 at an offered
    # 500/s was 13 ms against 34 (docs/export.md, "Serve"); at concurrency 32 the two were within noise
    p.add_argument("--workers", type=positive_int, default=2, help="server processes, each with its own model")
    p.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime (or torch) threads per worker")
    p.add_argument("--max-batch", type=positive_int, default=32, help="texts per model call (1: batching off)")
    # Waiting for company costs a lone request its wait and gains little under load, where requests
    # queue while the model runs anyway: with 0 the student package served 2.4x the requests at
    # concurrency 1 and 1.05x at 32 that it did with 2 ms (docs/export.md, "Serve")
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="how long a batch waits for more requests (0: it takes those queued while the model ran)")
    # A batch runs as model calls of --model-batch texts of similar length: on 2 cores the int8 student
    # package took 41 ms for 32 texts in calls of 4 and 52 ms in one call of 32 (its padding)
    p.add_argument("--model-batch", type=positive_int, default=4, help="texts per ONNX Runtime call")
    p.add_argument("--max-texts", type=positive_int, default=64, help="texts one request may hold")
    p.add_argument("--max-body-kb", type=positive_int, default=64, help="largest request body")
    p.add_argument("--max-seq-length", "--max-length", dest="max_seq_length", type=positive_int, default=64,
                   help="tokens per text; a longer one is refused")
    p.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    p.add_argument("--graceful-timeout", type=positive_int, default=30,
                   help="seconds SIGTERM waits for the requests in flight")
    args = p.parse_args(argv)
    if args.max_wait_ms < 0:
        p.error(f"argument --max-wait-ms: {args.max_wait_ms} is negative")
    if args.port > 65535:
        p.error(f"argument --port: {args.port} is not a port (0-65535)")
    return args


@contextlib.contextmanager
def graceful_stop_succeeds():
    """uvicorn re-raises the SIGTERM / SIGINT it shut down on, once it has answered the requests
    in flight; that stop is the service's normal end (exit 0), not an interruption."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv=None):
    import uvicorn
    args = parse_args(argv)
    if not os.path.isdir(args.model):
        raise UsageError(f"--model {args.model}: no such folder")
    checked_folder(args.model)  # a package's manifest, read and checked
    settings = {"model": args.model, "threads": args.threads, "max_length": args.max_seq_length, "model_batch": args.model_batch,
                "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "max_texts": args.max_texts,
                "max_body_kb": args.max_body_kb}
    predictor = Predictor(args.model, args.threads, args.max_seq_length, args.model_batch)  # one line if it does not load
    served = dict(host=args.host, port=args.port, access_log=args.access_log, log_level="info",
                  timeout_graceful_shutdown=args.graceful_timeout, loop="uvloop", http="httptools",
                  timeout_worker_healthcheck=120)  # a worker loads its model first (torch too, for a PyTorch one)
    print(f"serving {args.model} ({predictor.task}) on http://{args.host}:{args.port}: {args.workers} worker(s) x "
          f"{args.threads} thread(s), batches of up to {args.max_batch} texts", file=sys.stderr)
    with graceful_stop_succeeds():
        if args.workers == 1:
            uvicorn.run(build_app(predictor, settings), **served)
        else:  # each worker process builds its own app and model from the settings
            del predictor
            os.environ[SETTINGS_ENV] = json.dumps(settings)
            config = uvicorn.Config("common.serving:create_app", factory=True, workers=args.workers, **served)
            supervisor_class()(config, sockets=[config.bind_socket()]).run()
    return 0


def supervisor_class():
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's worker supervisor, closing its copy of the listening socket before it stops the
        workers: once they have closed theirs, a new connection is refused, not left in the backlog."""

        def terminate_all(self):
            for sock in self.sockets:
                sock.close()
            super().terminate_all()
    return Supervisor


if __name__ == "__main__":
    sys.exit(run_cli(main))
