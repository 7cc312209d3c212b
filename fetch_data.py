#!/usr/bin/env python
"""Fetch the study's data into one folder: MASSIVE 1.1 and a generic corpus of Wikipedia leads.

    python fetch_data.py --out data                                   # en-US and English leads
    python fetch_data.py --out data --locales en-US es-ES fr-FR --wikipedia en es fr
    KD_DATA=data bash reproduce.sh --quick                           # the study reads it from there

Writes OUT/massive-1.1/<locale>.jsonl (MASSIVE's own JSONL, with its LICENSE and NOTICE) from the
release tarball, and OUT/wikipedia-lead/<lang>.jsonl ({"title", "text"} a line: the lead section,
the text before the first blank line, of each article) from the hub's Wikipedia dump. Licences:
MASSIVE CC BY 4.0; Wikipedia text CC BY-SA 4.0. The leads are the first --articles articles of the
dump that have a lead of at least --min-chars characters, not the list of vital articles that
../shared/data was built from, so figures on them differ a little from the landed studies'.
Either source can be a local file instead (--massive-archive, --wikipedia-dataset): that is how the
tests run it, since they reach no hub.
"""
import json
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

from common.run import ArgumentParser, UsageError, check_writable_parent, positive_int, run_cli

MASSIVE_URL = "https://amazon-massive-nlu-dataset.s3.amazonaws.com/amazon-massive-dataset-1.1.tar.gz"
WIKIPEDIA = "wikimedia/wikipedia"
WIKIPEDIA_DUMP = "20231101"


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the data folder (the study's KD_DATA)")
    p.add_argument("--locales", nargs="+", default=["en-US"], help="MASSIVE locales (51 in the release)")
    p.add_argument("--wikipedia", nargs="*", default=["en"], help="languages of the generic corpus (none: skip)")
    p.add_argument("--articles", type=positive_int, default=10_000, help="lead sections per language")
    p.add_argument("--min-chars", type=positive_int, default=200, help="shorter leads are skipped")
    p.add_argument("--massive-archive", default=MASSIVE_URL, help="the MASSIVE 1.1 tarball: a URL or a local file")
    p.add_argument("--wikipedia-dataset", default=WIKIPEDIA,
                   help=f"a hub dataset of articles with title and text ({WIKIPEDIA}, config {WIKIPEDIA_DUMP}.<lang>), "
                        "or a local folder of JSONL / Parquet files, one per language: <lang>.jsonl")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    return p.parse_args(argv)


def fetch_massive(archive, locales, out):
    """Extract <locale>.jsonl (and the licence files) from the release tarball into out/."""
    local = Path(archive)
    if not local.is_file():
        if Path(archive).exists() or "://" not in archive:
            raise UsageError(f"--massive-archive {archive}: not a file or URL")
        local = out.with_name(out.name + ".download")
        print(f"downloading {archive}", file=sys.stderr)
        urllib.request.urlretrieve(archive, local)
    try:
        with tarfile.open(local) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [loc for loc in locales if f"{loc}.jsonl" not in members]
            if missing:
                raise UsageError(f"--massive-archive {archive}: no {', '.join(missing)} in it (locales like en-US)")
            work = out.with_name(out.name + ".partial")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            for name in [f"{loc}.jsonl" for loc in locales] + [n for n in ("LICENSE", "NOTICE.md") if n in members]:
                (work / name).write_bytes(tar.extractfile(members[name]).read())
    except tarfile.TarError:
        raise UsageError(f"--massive-archive {archive}: not a tar archive (the MASSIVE 1.1 release is a .tar.gz)") from None
    finally:
        if local.name.endswith(".download"):
            local.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)


def lead(text):
    """The lead section: the article's text before its first blank line."""
    return text.strip().split("\n\n", 1)[0].strip()


def articles(dataset, lang):
    """An iterator of {"title", "text"} rows: a local <lang>.jsonl / .parquet, else the hub's dump."""
    from datasets import load_dataset

    if Path(dataset).is_dir():
        file = local_articles(dataset, lang)
        return load_dataset(file.suffix.lstrip(".").replace("jsonl", "json"), data_files=str(file), split="train",
                            streaming=True)
    return load_dataset(dataset, f"{WIKIPEDIA_DUMP}.{lang}", split="train", streaming=True)


def local_articles(dataset, lang):
    files = [f for f in (Path(dataset) / f"{lang}.jsonl", Path(dataset) / f"{lang}.parquet") if f.is_file()]
    if not files:
        raise UsageError(f"--wikipedia-dataset {dataset}: no {lang}.jsonl or {lang}.parquet in it")
    return files[0]


def fetch_leads(dataset, lang, count, min_chars, path):
    work = path.with_name(path.name + ".partial")
    kept = 0
    with open(work, "w", encoding="utf-8") as f:
        for row in articles(dataset, lang):
            text = lead(row.get("text") or "")
            if len(text) >= min_chars:
                f.write(json.dumps({"title": row.get("title"), "text": text}, ensure_ascii=False) + "\n")
                kept += 1
                if kept == count:
                    break
    if kept == 0:
        work.unlink()
        raise UsageError(f"--wikipedia-dataset {dataset}: no {lang} article has a lead of {min_chars}+ characters")
    work.rename(path)
    return kept


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    check_writable_parent(out / "x", "--out") if out.is_dir() else check_writable_parent(out, "--out")
    for lang in args.wikipedia:  # a local dump is checked before anything is written
        if Path(args.wikipedia_dataset).is_dir():
            local_articles(args.wikipedia_dataset, lang)
    massive = out / "massive-1.1"
    todo = [loc for loc in args.locales if args.overwrite or not (massive / f"{loc}.jsonl").is_file()]
    if todo:
        kept = [loc for loc in args.locales if loc not in todo]
        fetch_massive(args.massive_archive, args.locales if kept else todo, massive)
        print(f"wrote {massive}/ ({', '.join(args.locales)})", file=sys.stderr)
    for lang in args.wikipedia:
        path = out / "wikipedia-lead" / f"{lang}.jsonl"
        if path.is_file() and not args.overwrite:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        n = fetch_leads(args.wikipedia_dataset, lang, args.articles, args.min_chars, path)
        print(f"wrote {path} ({n} lead sections)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
