#!/usr/bin/env python
"""Predict with an exported (ONNX) model or a package.py package: utterances in, JSON lines out.

    python predict.py --model out/s03_icner_onnx/int8 "wake me up at seven am" "今週は午前五時に起こして"
    printf 'play some jazz\nwhat time is it\n' | python predict.py --model out/s03_dc_onnx/int8

One output line per input utterance, in order, so output line N answers input line N. A blank
(empty or whitespace-only) utterance is refused, since any prediction for it would be made up;
--blank empty answers it with {"text": ..., "empty": true} instead. Standard input must be UTF-8.
The same predictor is importable: `from common.inference import Predictor
from common.pipeline import checked_folder`.
"""
import json
import sys

from common.inference import Predictor
from common.pipeline import checked_folder
from common.positions import check_max_length
from common.run import ArgumentParser, UsageError, positive_int, run_cli


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="export.py fp32/ or int8/ folder, a package.py folder, or a finetuned PyTorch folder")
    p.add_argument("--threads", type=positive_int)
    p.add_argument("--max-seq-length", "--max-length", dest="max_seq_length", type=positive_int, default=64,
                   help="tokens per utterance; a longer one is refused, never cut (up to the model's positions)")
    p.add_argument("--blank", choices=("refuse", "empty"), default="refuse",
                   help="a blank utterance: refuse it (default), or answer it with an empty record")
    p.add_argument("utterances", nargs="*", help="utterances (default: one per line on standard input)")
    return p.parse_args(argv)


def read_stdin():
    """The lines of standard input, decoded as UTF-8, one utterance each (blank lines kept in place)."""
    texts = []
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            texts.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError:
            raise UsageError(f"standard input, line {number}: not UTF-8 text") from None
    return texts


def check_texts(texts, from_stdin, blank):
    """Refuse no input at all, and a blank utterance unless --blank empty."""
    if not texts:
        raise UsageError("no utterances: give them as arguments, or one a line on standard input")
    where = "standard input, line" if from_stdin else "utterance"
    if blank == "refuse":
        for number, text in enumerate(texts, 1):
            if not text.strip():
                raise UsageError(f"{where} {number} is blank: nothing to predict (--blank empty answers it "
                                 "with an empty record)")


def main(argv=None):
    args = parse_args(argv)
    check_max_length(str(checked_folder(args.model)), args.max_seq_length)
    texts = args.utterances or read_stdin()
    check_texts(texts, not args.utterances, args.blank)
    predictor = Predictor(args.model, args.threads, args.max_seq_length)
    predictor.check_lengths(texts)  # numbered as the input is
    filled = [t for t in texts if t.strip()]
    answers = iter(predictor(filled) if filled else [])
    for text in texts:
        record = {"text": text, **next(answers)} if text.strip() else {"text": text, "empty": True}
        print(json.dumps(record, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    run_cli(main)
