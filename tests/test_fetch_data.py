"""fetch_data.py on local stand-ins for its two sources: the MASSIVE release tarball and a Wikipedia dump."""
import json
import tarfile

from conftest import MASSIVE, WIKI, expect_usage_error, read_lines, write_jsonl

import fetch_data


def release(tmp_path, locales=("en-US", "de-DE")):
    """A tarball laid out as amazon-massive-dataset-1.1.tar.gz: 1.1/data/<locale>.jsonl, 1.1/LICENSE."""
    src = tmp_path / "1.1"
    (src / "data").mkdir(parents=True)
    for locale in locales:
        write_jsonl(src / "data" / f"{locale}.jsonl", read_lines(MASSIVE / f"{locale}.jsonl", 30))
    (src / "LICENSE").write_text("CC BY 4.0\n")
    archive = tmp_path / "massive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="1.1")
    return archive


def dump(tmp_path):
    """Articles as the hub's dump has them: the whole text, lead first, then sections."""
    rows = [{"id": str(i), "title": r["title"], "text": r["text"] + "\n\nHistory\n\nMore text."}
            for i, r in enumerate(read_lines(WIKI / "en.jsonl", 20))]
    rows.insert(3, {"id": "x", "title": "Stub", "text": "Too short.\n\nBody."})
    folder = tmp_path / "dump"
    folder.mkdir()
    write_jsonl(folder / "en.jsonl", rows)
    return folder, [r for r in rows if r["title"] != "Stub"]


def test_fetch_writes_massive_and_the_leads_the_study_reads(tmp_path):
    folder, rows = dump(tmp_path)
    out = tmp_path / "data"
    assert fetch_data.main(["--out", str(out), "--locales", "en-US", "--massive-archive", str(release(tmp_path)),
                            "--wikipedia-dataset", str(folder), "--articles", "5", "--min-chars", "50"]) == 0
    assert (out / "massive-1.1" / "en-US.jsonl").read_bytes() == (tmp_path / "1.1" / "data" / "en-US.jsonl").read_bytes()
    assert (out / "massive-1.1" / "LICENSE").is_file() and not (out / "massive-1.1" / "de-DE.jsonl").exists()
    leads = [json.loads(line) for line in (out / "wikipedia-lead" / "en.jsonl").open()]
    # the lead section only, the short stub skipped, as many as asked for
    assert [r["title"] for r in leads] == [r["title"] for r in rows[:5]]
    assert [r["text"] for r in leads] == [r["text"].split("\n\n")[0] for r in rows[:5]]
    from common.massive import load_massive
    assert len(load_massive(out / "massive-1.1" / "en-US.jsonl", None, ["train", "dev", "test"])[0]) == 30


def test_fetch_refuses_what_it_cannot_read(tmp_path, capsys):
    folder, _ = dump(tmp_path)
    archive = release(tmp_path)
    out = tmp_path / "data"
    expect_usage_error(capsys, fetch_data.main, ["--out", str(out), "--locales", "xx-XX", "--massive-archive",
                                                 str(archive), "--wikipedia"], "no xx-XX in it", out / "massive-1.1")
    not_tar = tmp_path / "not.tar.gz"
    not_tar.write_text("hello")
    expect_usage_error(capsys, fetch_data.main, ["--out", str(out), "--massive-archive", str(not_tar), "--wikipedia"],
                       "not a tar archive", out / "massive-1.1")
    expect_usage_error(capsys, fetch_data.main, ["--out", str(out), "--massive-archive", str(archive),
                                                 "--wikipedia", "fr", "--wikipedia-dataset", str(folder)],
                       "no fr.jsonl or fr.parquet in it")
    assert not (out / "wikipedia-lead" / "fr.jsonl").exists()
