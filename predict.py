#!/usr/bin/env python
"""Predict with an exported (ONNX) DC or ICNER model: utterances in, JSON lines out.

    python predict.py --model out/s03_icner_onnx/int8 "wake me up at seven am" "今週は午前五時に起こして"
    echo "play some jazz" | python predict.py --model out/s03_dc_onnx/int8

The same predictor is importable: `from common.onnx_models import Predictor`.
"""
import json
import sys

from common.onnx_models import Predictor
from common.run import ArgumentParser, run_cli


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="export.py fp32/ or int8/ folder")
    p.add_argument("--threads", type=int)
    p.add_argument("utterances", nargs="*", help="utterances (default: one per line on stdin)")
    args = p.parse_args(argv)
    predictor = Predictor(args.model, args.threads)
    texts = args.utterances or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for text, result in zip(texts, predictor(texts)):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    run_cli(main)
