#!/usr/bin/env python
"""Package a DC export and an ICNER export into one NLU system: the DC model routes each
utterance to the ICNER model of its predicted domain (the deployment of Peris et al.).

    python package.py --dc out/export/dc --icner out/export/icner --output-dir out/export/package \
        --data massive-1.1/ --locales en-US --benchmark

--dc and --icner are export.py output folders (their int8/ is taken, or --variant fp32), or one of
their variant folders; --icner may be a per-domain export (finetune.py --all-domains, then
export.py), whose every domain's model is taken. --variant torch packages finetune.py folders
(no export) as they are: the PyTorch baseline, served and timed the same way. OUTPUT_DIR holds manifest.json (common.pipeline),
dc/, icner/ or icner/<domain>/, and run.json. With --data, the package's dev scores with predicted
routing and with gold routing (evaluation.json); with --benchmark, latency.json: the DC model alone
and the package end to end, at batch 1 and 32, in one run. predict.py and evaluate.py open it.
"""
import json
import shutil
import sys
import time
from pathlib import Path

from common.utterance import sample
from common.onnx_models import ONNX_FILE
from common.tasks import LABELS_FILE
from common.pipeline import (EVERY_DOMAIN, FORMAT, MANIFEST, Pipeline, is_model_folder, print_scores, score_package,
                             with_domains)
from common.run import (ArgumentParser, UsageError, check_output_dir, partial_dir, positive_int, publish, run_cli,
                        run_record, write_json_atomic)
from common.task_data import add_data_args, load_task_data


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--dc", required=True, help="export.py folder of the DC model (or its int8/ or fp32/)")
    p.add_argument("--icner", required=True, help="export.py folder of the ICNER model, global or per domain")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--variant", choices=("int8", "fp32", "torch"), default="int8",
                   help="which export of each model; torch: --dc and --icner are finetune.py folders")
    add_data_args(p, what="dev for the end-to-end scores, test for the benchmark")
    p.add_argument("--benchmark", action="store_true", help="latency: the DC model alone and the package")
    p.add_argument("--benchmark-utterances", type=positive_int, default=300, help="test utterances timed at batch 1")
    p.add_argument("--max-dev-utterances", type=positive_int, help="a fixed random sample of N dev utterances")
    p.add_argument("--threads", type=positive_int, default=2)
    args = p.parse_args(argv)
    if args.benchmark and not args.data:
        p.error("--benchmark needs --data (with a test split)")
    return args


def variant_folder(folder, variant, flag):
    """An export's variant folder, or the folder itself when it is one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{flag} {folder}: no such folder")
    if variant == "torch":
        if not is_model_folder(folder) or not (folder / LABELS_FILE).is_file():
            raise UsageError(f"{flag} {folder}: not a finetune.py folder (no weights and {LABELS_FILE})")
        return folder
    for candidate in (folder / variant, folder):
        if (candidate / ONNX_FILE).is_file():
            return candidate
    raise UsageError(f"{flag} {folder}: not an export.py folder (no {variant}/{ONNX_FILE})")


def icner_folders(folder, variant):
    """{domain: folder} of a per-domain export, or {"*": folder} of a global one."""
    folder = Path(folder)
    record = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
    if not record.get("per_domain"):
        return {EVERY_DOMAIN: variant_folder(folder, variant, "--icner")}
    if variant == "torch":  # finetune.py --all-domains: a model folder per domain
        return {d: variant_folder(folder / d, variant, "--icner") for d in record["domains"]}
    missing = [d for d in record["domains"] if not (folder / d / variant / ONNX_FILE).is_file()]
    if missing:
        raise UsageError(f"--icner {folder}: the per-domain export has no {variant} model for {', '.join(missing)} "
                         f"({folder / missing[0] / variant / ONNX_FILE} missing)")
    return {d: folder / d / variant for d in record["domains"]}


def build(args, work):
    """Copy each model into work and write its manifest; returns the manifest."""
    dc = variant_folder(args.dc, args.variant, "--dc")
    icner = icner_folders(args.icner, args.variant)
    shutil.copytree(dc, work / "dc")
    routes = {}
    for domain, source in icner.items():
        routes[domain] = "icner" if domain == EVERY_DOMAIN else f"icner/{domain}"
        shutil.copytree(source, work / routes[domain])
    manifest = {"format": FORMAT, "version": 1, "variant": args.variant, "dc": "dc", "icner": routes,
                "sources": {"dc": str(dc), "icner": {d: str(s) for d, s in icner.items()}}}
    write_json_atomic(work / MANIFEST, manifest)
    return manifest


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    output_dir, work = Path(args.output_dir), partial_dir(args.output_dir)
    check_output_dir(output_dir, args.overwrite, resume=False)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        manifest = build(args, work)
        pipeline = Pipeline(work, args.threads)  # every DC domain served, every model loads
        run = run_record("package.py", args, manifest=manifest)
        if args.data:
            dev = sample(with_domains(load_task_data(args, "dev", "icner")[0], args.data), args.max_dev_utterances)
            metrics, _ = score_package(pipeline, dev)
            write_json_atomic(work / "evaluation.json", {"split": "dev", "metrics": metrics})
            run["dev"] = {k: metrics[k] for k in ("headline", "routing_cost_points")}
            print_scores(metrics)
        if args.benchmark:
            write_json_atomic(work / "latency.json", benchmark(args, work, load_task_data(args, "test", "icner")[0]))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # nothing half-written
        raise
    run["timings"] = {"wall_s": round(time.time() - started, 3)}
    write_json_atomic(work / "run.json", run)
    publish(work, output_dir)
    print(f"package saved to {output_dir}: DC + {len(manifest['icner'])} ICNER model(s), {args.variant}", file=sys.stderr)
    return 0


def benchmark(args, work, test):
    """The DC model alone and the package end to end, timed in one run (common.latency)."""
    from common.latency import benchmark as time_model, cpu_name, within_spread
    texts = [u.text for u in test][:args.benchmark_utterances]
    texts32 = [u.text for u in test][:max(32 * 3, args.benchmark_utterances)]
    rows = []
    dc = ("PyTorch fp32 DC", "torch") if args.variant == "torch" else (f"ONNX {args.variant} DC", "onnx")
    for name, kind, folder in ((*dc, work / "dc"),
                               (f"package ({args.variant})", "package", work)):
        print(f"benchmarking {name} ...", file=sys.stderr)
        (batch_1, batch_32), peak_mb = time_model(kind, folder, [(1, texts), (32, texts32)], args.threads)
        rows.append({"model": name, "batch_1": batch_1, "batch_32": batch_32, "peak_memory_mb": peak_mb})
    for row, alike in zip(rows, within_spread(rows)):
        row["within_spread_of"] = alike
    ratio = round(rows[1]["batch_1"]["p50_ms"] / rows[0]["batch_1"]["p50_ms"], 2)
    print(f"\nlatency, {args.threads} threads, tokenisation included (ms): "
          + "; ".join(f"{r['model']} b1 p50 {r['batch_1']['p50_ms']:.2f}, p95 {r['batch_1']['p95_ms']:.2f}, "
                      f"b32 p50 {r['batch_32']['p50_ms']:.1f}" for r in rows)
          + f"; the package takes {ratio}x the DC model's b1 p50")
    return {"threads": args.threads, "cpu": cpu_name(), "utterances_batch_1": len(texts), "rows": rows,
            "package_over_dc_p50_batch_1": ratio}


if __name__ == "__main__":
    sys.exit(run_cli(main))
