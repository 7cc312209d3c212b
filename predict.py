#!/usr/bin/env python
"""Predict with an exported (ONNX) DC or ICNER model: utterances in, JSON lines out.

    python predict.py --model out/s03_icner_onnx/int8 "wake me up at seven am" "今週は午前五時に起こして"
    echo "play some jazz" | python predict.py --model out/s03_dc_onnx/int8

The same predictor is importable: `from common.onnx_models import Predictor`.
"""
import json
import sys

from common.models import check_max_length
from common.onnx_models import Predictor
from common.run import ArgumentParser, positive_int, run_cli


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="export.py fp32/ or int8/ folder")
    p.add_argument("--threads", type=positive_int)
    p.add_argument("--max-length", type=positive_int, default=64,
                   help="tokens per utterance; a longer one is refused, never cut (up to the model's positions)")
    p.add_argument("utterances", nargs="*", help="utterances (default: one per line on stdin)")
    args = p.parse_args(argv)
    check_max_length(args.model, args.max_length, length_flag="--max-length")
    predictor = Predictor(args.model, args.threads, args.max_length)
    texts = args.utterances or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for text, result in zip(texts, predictor(texts)):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    run_cli(main)
