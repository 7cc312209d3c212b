"""The README and the landed reports: generated, consistent, and free of this machine's paths."""
import gzip
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

from common.answer import LANDED, answer_block, readme_block
from common.report import read_provenance, render_report

# Landed studies that a later one replaced in the README's answer table; their reports stay checked.
SUPERSEDED = ["docs/results/pilot-students"]
# An absolute path on a machine (a folder under work, home, tmp, ... at the root), not /usr/bin/env or a URL.
MACHINE_PATH = re.compile(r"(?<![\w.~<>:/-])/(work|root|home|tmp|Users|mnt|opt|srv|scratch)/")


def tracked_files():
    return subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip("\0").split("\0")


def test_no_tracked_file_holds_an_absolute_machine_path():
    offenders = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file() or path.suffix in (".png",):
            continue
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        offenders += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {text[m.start():m.start() + 40]}"
                      for m in MACHINE_PATH.finditer(text)][:1]
    assert not offenders, "\n".join(offenders)


def test_the_machine_path_check_can_fail():
    root = "/"  # built here, so that this file holds no such path itself
    assert MACHINE_PATH.search(f'"model": "{root}work/runs/x/dc"') and MACHINE_PATH.search(f"cd {root}tmp/ml-gpu")
    assert not MACHINE_PATH.search("#!/usr/bin/env bash https://example.org/tmp/x <tmp>/x ../runs/x")


def test_the_readme_answer_table_is_the_one_the_landed_reports_give():
    assert readme_block(REPO / "README.md") == answer_block(), \
        "README.md's answer table is stale: python aggregate.py --readme README.md"


def test_each_landed_report_is_what_its_results_generate():
    for name in LANDED + SUPERSEDED:
        folder = REPO / name
        assert (folder / "REPORT.md").read_text(encoding="utf-8") == render_report(folder, read_provenance(folder)), \
            f"{name}/REPORT.md was edited or is stale: python aggregate.py --report {name}"


def test_the_readme_is_a_guide_first():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 15_000
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert "Install" in sections[:3] and "Data" in sections[:4], sections
    for link in re.findall(r"\]\(((?:docs|\.)/[^)#]+)", text):
        assert (REPO / link).exists(), f"README links to {link}, which does not exist"


def test_the_docs_link_only_to_what_exists():
    for page in sorted((REPO / "docs").glob("*.md")):
        for link in re.findall(r"\]\(([^)#:]+)", page.read_text(encoding="utf-8")):
            assert (page.parent / link).exists(), f"{page.name} links to {link}, which does not exist"


def test_the_per_domain_package_report_is_what_its_files_generate(tmp_path):
    """docs/results/per-domain-package/REPORT.md, written by its report.py from the landed files."""
    landed = REPO / "docs" / "results" / "per-domain-package"
    copy = shutil.copytree(landed, tmp_path / "copy")
    (copy / "REPORT.md").unlink()
    subprocess.run([sys.executable, str(landed / "report.py"), str(copy)], check=True, capture_output=True)
    assert (copy / "REPORT.md").read_text(encoding="utf-8") == (landed / "REPORT.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("pilot", ["pilot-teacher", "pilot-slot-gap"])
def test_a_pilots_comparison_is_what_its_records_give(pilot):
    """docs/results/<pilot>/compare.txt, printed by its compare.py from the jobs' records."""
    folder = REPO / "docs" / "results" / pilot
    printed = subprocess.run([sys.executable, str(folder / "compare.py")], check=True, capture_output=True, text=True)
    assert printed.stdout == (folder / "compare.txt").read_text(encoding="utf-8")
