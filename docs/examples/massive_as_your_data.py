#!/usr/bin/env python
"""Write MASSIVE in the formats your own data may come in, to try the study on them.

    python docs/examples/massive_as_your_data.py --massive ../shared/data/massive-1.1/en-US.jsonl --out my-data

writes my-data/traffic.txt (the train utterances, one a line: unlabelled target text),
my-data/slots/{train,valid,test}/{seq.in,seq.out,label} (BIO three-file layout, for ICNER),
my-data/slots.conll/{train,valid,test}.conll (CoNLL with # intent / # domain comments) and
my-data/domains/{train,valid,test}.csv (columns utterance, domain: classification, for DC).
The README's worked example runs reproduce.sh on them and gets the MASSIVE figures back.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for common/

from common.massive import load_massive  # noqa: E402
from common.run import ArgumentParser, run_cli  # noqa: E402
from common.task_data import write_bio, write_classification, write_conll  # noqa: E402

FOLDERS = {"train": "train", "dev": "valid", "test": "test"}


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--massive", required=True, help="a MASSIVE <locale>.jsonl file (or folder, with --locales)")
    p.add_argument("--locales", nargs="+")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    for split, name in FOLDERS.items():
        utterances = load_massive(args.massive, args.locales, [split])[0]
        if split == "train":
            out.mkdir(parents=True, exist_ok=True)
            (out / "traffic.txt").write_text("".join(u.text + "\n" for u in utterances), encoding="utf-8")
        write_bio(out / "slots" / name, utterances)
        (out / "slots.conll").mkdir(exist_ok=True)
        write_conll(out / "slots.conll" / f"{name}.conll", utterances)
        (out / "domains").mkdir(exist_ok=True)
        write_classification(out / "domains" / f"{name}.csv", utterances, "utterance", "domain")
        print(f"{split}: {len(utterances)} utterances", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
