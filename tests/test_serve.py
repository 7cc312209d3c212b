"""serve.py as a process on a free localhost port, and the load test's harness, on a tiny package."""
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import export
import finetune
import package
import serve
from common.massive import load_massive
from common.inference import Predictor
from conftest import REPO, expect_usage_error, script_env


@pytest.fixture(scope="module")
def packages(teacher_dir, data_dir, tmp_path_factory):
    """A DC + global ICNER package of tiny models (int8 ONNX), and the same models as a torch package."""
    root = tmp_path_factory.mktemp("serve")
    data = ["--data", str(data_dir / "massive"), "--locales", "en-US"]
    for task in ("dc", "icner"):
        assert finetune.main(["--task", task, "--model", str(teacher_dir), *data, "--output-dir", str(root / task),
                              "--batch-size", "16", "--lr", "3e-3", "--max-steps", "40"]) == 0
        assert export.main(["--model", str(root / task), "--output-dir", str(root / f"{task}_export"),
                            "--no-parity"]) == 0
    assert package.main(["--dc", str(root / "dc_export"), "--icner", str(root / "icner_export"),
                         "--output-dir", str(root / "int8")]) == 0
    assert package.main(["--dc", str(root / "dc"), "--icner", str(root / "icner"), "--variant", "torch",
                         "--output-dir", str(root / "torch")]) == 0
    return root


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """serve.py in its own process, waited for on /health."""

    def __init__(self, model, *flags, log=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen([sys.executable, "serve.py", "--model", str(model), "--port", str(self.port),
                                         *flags], cwd=REPO, env=script_env(), stdout=log.open("w"),
                                        stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline and self.process.poll() is None:
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.process.kill()
        raise AssertionError(f"serve.py did not start: {log.read_text()[-2000:]}")

    def request(self, path, body=None, method=None, headers=None):
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def chunked(self, path, chunks):
        """The status line and the rest of the answer to a chunked POST, sent in one write: the
        server answers once it has read past its limit, and a client still sending by then gets a
        broken pipe instead of the answer."""
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as connection:
            connection.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                               "Content-Type: application/json\r\nConnection: close\r\n\r\n".encode() + body)
            return connection.makefile("rb").read()

    def get(self, path):
        return self.request(path)

    def predict(self, texts):
        return self.request("/predict", json.dumps({"texts": texts}).encode())

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def test_concurrent_requests_get_the_predictors_answers_batched_together(packages, data_dir, tmp_path):
    """Requests sent together (and waited for: --max-wait-ms) share model calls, and each still
    gets exactly what the Predictor answers for its own texts; the torch package the same."""
    texts = [u.text for u in load_massive(data_dir / "massive", ["en-US"], ["test"])[0][:24]]
    starts = [0, 1, 3, 6, 7, 9, 12, 13, 15, 18, 19, 21, 24]
    requests = [texts[a:b] for a, b in zip(starts, starts[1:])]  # 1, 2, 3, 1, 2, 3, ... texts
    for variant in ("int8", "torch"):
        expected = Predictor(packages / variant)(texts)
        assert all(set(p) == {"domain", "intent", "slots"} for p in expected)
        server = Server(packages / variant, "--workers", "1", "--max-wait-ms", "200", "--max-batch", "32",
                        log=tmp_path / f"{variant}.log")  # one worker: /health counts its process's requests
        try:
            with ThreadPoolExecutor(len(requests)) as pool:
                answers = list(pool.map(server.predict, requests))
            for sent, (status, body) in zip(requests, answers):
                start = texts.index(sent[0])
                assert status == 200 and body == {"predictions": expected[start:start + len(sent)]}
            status, health = server.get("/health")
            assert status == 200 and health["task"] == "nlu"
            assert health["requests"] == len(requests) and health["texts"] == len(texts)
            assert health["batches"] < len(requests)  # some requests shared a model call
        finally:
            assert server.stop() == 0
        assert "Traceback" not in server.log.read_text()


def test_each_bad_request_is_a_4xx_with_one_line_naming_the_field(packages, tmp_path):
    server = Server(packages / "int8", "--workers", "1", "--max-texts", "4", "--max-body-kb", "1", "--max-length", "16",
                    log=tmp_path / "serve.log")
    cases = [
        (b"not json", 400, "the body is not JSON"),
        (json.dumps({"text": ["hi"]}).encode(), 422, 'needs a "texts" field'),
        (json.dumps(["hi"]).encode(), 422, 'needs a "texts" field'),
        (json.dumps({"texts": "hi"}).encode(), 422, '"texts" must be a list of strings, not str'),
        (json.dumps({"texts": ["hi", 3]}).encode(), 422, "texts[1] must be a string, not int"),
        (json.dumps({"texts": []}).encode(), 422, '"texts" is empty'),
        (json.dumps({"texts": ["hi", "  "]}).encode(), 422, "texts[1] is blank"),
        (json.dumps({"texts": ["hi", "set an alarm for seven in the morning on every weekday please " * 2]}).encode(),
         422, "texts[1] has"),
        (json.dumps({"texts": ["hi"] * 5}).encode(), 413, '"texts" has 5 texts, more than the 4'),
        (json.dumps({"texts": ["hi " * 400]}).encode(), 413, "over the 1024-byte limit"),
        (b"\xff\xfe not utf-8", 400, "the body is not JSON"),
    ]
    try:
        for body, status, message in cases:
            got, answer = server.request("/predict", body)
            assert got == status and list(answer) == ["error"] and message in answer["error"], (body[:40], answer)
            assert "\n" not in answer["error"]
        # a body with no length that streams past the limit is cut off there too
        assert server.chunked("/predict", [b'{"texts": ["', b"a" * 2000, b'"]}']).startswith(b"HTTP/1.1 413 ")
        assert server.request("/predict")[0] == 405 and server.request("/nothing")[0] == 404
        assert server.predict(["hi"])[0] == 200  # and it still serves
        assert server.get("/health")[1]["requests"] == 1  # no bad request reached the model
    finally:
        assert server.stop() == 0
    log = server.log.read_text()
    assert "Traceback" not in log and "500" not in log


def test_sigterm_answers_the_request_in_flight_refuses_new_ones_and_exits_0(packages, tmp_path):
    """A lone request waits --max-wait-ms (3 s) for company: SIGTERM arrives while it is in flight.
    Two worker processes (the default): the parent passes SIGTERM on and each worker drains."""
    server = Server(packages / "int8", "--workers", "2", "--max-wait-ms", "3000", log=tmp_path / "serve.log")
    answer = {}
    in_flight = threading.Thread(target=lambda: answer.update(zip(("status", "body"), server.predict(["play jazz"]))))
    in_flight.start()
    time.sleep(1.0)
    server.process.send_signal(signal.SIGTERM)
    deadline, refused = time.time() + 1.5, False
    while not refused and time.time() < deadline:  # the listening socket closes: new connections are refused
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            time.sleep(0.1)
        except ConnectionRefusedError:
            refused = True
    assert refused and in_flight.is_alive()  # refused while the request in flight is still being served
    in_flight.join(30)
    assert answer["status"] == 200 and len(answer["body"]["predictions"]) == 1
    assert server.process.wait(30) == 0


def test_a_model_that_does_not_load_is_one_line_at_startup(packages, tmp_path, capsys):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(packages / "int8"), str(broken)], check=True)
    (broken / "dc" / "model.onnx").write_bytes(b"truncated")
    expect_usage_error(capsys, serve.main, ["--model", str(broken)], "not a model ONNX Runtime can load")
    expect_usage_error(capsys, serve.main, ["--model", str(tmp_path / "none")], "no such folder")


def test_the_load_test_runs_every_level_against_each_server_and_stops_them(packages, data_dir, tmp_path):
    """The harness, not the timings: every server ran every level for every round, each round its
    bounded number of requests without an error, and each server stopped on SIGTERM with exit 0."""
    out = tmp_path / "load.json"
    servers = {"batched": f"--model {packages / 'int8'} --workers 1", "unbatched": f"--model {packages / 'int8'} "
               "--workers 1 --max-batch 1"}
    proc = subprocess.run([sys.executable, "benchmarks/load_test.py", "--data", str(data_dir / "massive"), "--locales",
                           "en-US", *(arg for label, flags in servers.items() for arg in ("--server", f"{label}={flags}")),
                           "--concurrency", "1", "4", "--rate", "40", "--requests", "15", "--rounds", "2",
                           "--seconds", "20", "--warmup", "5", "--output", str(out)],
                          cwd=REPO, env=script_env(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    report = json.loads(out.read_text())
    assert [(s["label"], s["flags"], s["exit_code"]) for s in report["servers"]] == [
        (label, flags, 0) for label, flags in servers.items()]
    assert sorted((r["server"], r["mode"], r["level"]) for r in report["rows"]) == sorted(
        (label, mode, level) for label in servers for mode, level in [("closed", 1), ("closed", 4), ("open", 40)])
    for row in report["rows"]:
        assert row["requests"] == 30 and row["errors"] == 0 and len(row["throughput_rps_per_round"]) == 2
        assert row["throughput_rps"] > 0 and row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert "unbatched" in proc.stdout.decode() and "concurrency 4" in proc.stdout.decode()


def test_micro_batches_take_waiting_requests_while_they_fit_and_never_split_one():
    import asyncio

    from common.serving import MicroBatcher
    calls = []

    def predict(texts):
        calls.append(list(texts))
        return [t.upper() for t in texts]

    async def serve(max_batch, max_wait_ms, requests):
        batcher = MicroBatcher(predict, max_batch, max_wait_ms)
        task = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        task.cancel()
        return answers, batcher.counts

    requests = [["a"], ["b", "c"], ["d", "e"], ["f"], ["g", "h", "i", "j", "k"]]
    answers, counts = asyncio.run(serve(4, 50, requests))
    assert answers == [[t.upper() for t in r] for r in requests]
    # a+bc fit in 4; de would not, so it starts the next batch with f; the 5-text request, larger
    # than any batch, runs alone rather than being split
    assert calls == [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i", "j", "k"]]
    assert counts == {"requests": 5, "texts": 11, "batches": 3}
    calls.clear()
    answers, counts = asyncio.run(serve(1, 50, requests))  # batching off: each request alone
    assert calls == requests and counts["batches"] == 5
