#!/usr/bin/env python
"""Rewrite the absolute paths of this machine in result files (logs, run.json, reports; .gz too) as
paths relative to the repository, so that results copied into docs/results/ name no machine:

    python docs/results/strip_paths.py FILE...

The repository's root becomes '.', its parent '..', site-packages '<site-packages>/', the
interpreter's prefix '<venv>', /tmp '<tmp>', the home folder '~'.
"""
import gzip
import re
import site
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def rules():
    """(absolute prefix, what replaces it), the longest first, so a folder inside another goes first."""
    pairs = {(sysconfig.get_paths()["purelib"], "<site-packages>"), (str(REPO), "."), (str(REPO.parent), ".."),
             (sys.prefix, "<venv>"), (str(Path.home()), "~"), ("/tmp", "<tmp>")}
    pairs |= {(p, "<site-packages>") for p in site.getsitepackages()}
    return sorted(((a.rstrip("/"), b) for a, b in pairs if a.rstrip("/")), key=lambda p: -len(p[0]))


def strip(text):
    for prefix, replacement in rules():
        # the prefix as a whole path component: followed by '/', a quote, a space, punctuation or the end
        pattern = re.compile(r"(?<![\w.~<>-])" + re.escape(prefix) + r"(?=[/\"'\s,)\]:;]|$)")
        text = pattern.sub(replacement, text)
    return text


def main(paths):
    for name in paths:
        path = Path(name)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
        new = strip(text)
        if new != text:
            if path.suffix == ".gz":
                path.write_bytes(gzip.compress(new.encode("utf-8"), mtime=0))
            else:
                path.write_text(new, encoding="utf-8")
            print(f"stripped {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
