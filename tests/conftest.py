"""Shared fixtures: tiny tokenizers and models built from configs, real MASSIVE and Wikipedia lines."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The shared data lives beside the checkout; KD_SHARED_DATA points elsewhere.
DATA = Path(os.environ.get("KD_SHARED_DATA", REPO.parent / "shared" / "data"))
MASSIVE = DATA / "massive-1.1"
WIKI = DATA / "wikipedia-lead"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist the workers share the cores: torch threads that outnumber them spin-wait for
# each other (several times slower), so each worker takes its share, in process and in children.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // WORKERS)))


def script_env(**extra):
    """The environment of a script run as a subprocess: the repository first on PYTHONPATH, ahead
    of (not instead of) the caller's, which may hold the packages themselves (a GPU machine with
    its packages installed into a folder of its own)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(script, args, env, nodes=2):
    """torchrun on `nodes` nodes of one process each, meeting at a c10d rendezvous on localhost:
    on one machine, the launchers stand in for the nodes of a SLURM allocation (docs/slurm.md)."""
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", "--nproc-per-node=1",
                              "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes",
                              str(REPO / script), *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(nodes)]


def same_weights(a, b):
    """Bit for bit: the model.safetensors of two output folders."""
    import torch
    from safetensors.torch import load_file
    a, b = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def read_lines(path, n, where=lambda row: True):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if where(row):
                out.append(row)
                if len(out) == n:
                    break
    return out


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """Small real subsets: MASSIVE en-US/ja-JP (all partitions) and English Wikipedia leads."""
    d = tmp_path_factory.mktemp("data")
    (d / "massive").mkdir()
    for locale in ("en-US", "ja-JP", "de-DE"):
        write_jsonl(d / "massive" / f"{locale}.jsonl", read_lines(MASSIVE / f"{locale}.jsonl", 600))
    write_jsonl(d / "wiki.jsonl", read_lines(WIKI / "en.jsonl", 200))
    return d


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, data_dir):
    """A WordPiece tokenizer built here from the subsets, saved as a BertTokenizerFast.

    The vocabulary is counted in Python, not trained with `tokenizers`' WordPieceTrainer: that
    trainer breaks ties in a hash-map order that changes from process to process, so every test
    session got another vocabulary, other tiny models, and knife-edge tests flipped at random.
    Every character (and its ## continuation) is in the vocabulary, so nothing becomes [UNK].
    """
    from collections import Counter

    from transformers import BertTokenizerFast
    from transformers.models.bert.tokenization_bert import BasicTokenizer

    files = sorted((data_dir / "massive").glob("*.jsonl"))
    texts = [r["utt"] for f in files for r in map(json.loads, f.open(encoding="utf-8"))]
    texts += [json.loads(line)["text"] for line in (data_dir / "wiki.jsonl").open(encoding="utf-8")]
    words = Counter(w for t in texts for w in BasicTokenizer(do_lower_case=True).tokenize(t))
    chars = sorted({c for w in words for c in w})
    frequent = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:500]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars] + frequent
    out = tmp_path_factory.mktemp("tokenizer")
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True).save_pretrained(out)
    return out


def make_teacher(path, tokenizer_dir, mlm_head, hidden=32, layers=2, heads=2, intermediate=64, seed=0, **config):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=128,
                        **config)
    torch.manual_seed(seed)
    model = (BertForMaskedLM if mlm_head else BertModel)(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory, tokenizer_dir):
    """A tiny BERT encoder without MLM head, like all-MiniLM-L6-v2."""
    return make_teacher(tmp_path_factory.mktemp("teacher"), tokenizer_dir, mlm_head=False)


@pytest.fixture(scope="session")
def dropout_free_teacher_dir(tmp_path_factory, tokenizer_dir):
    """The tiny encoder without dropout: each process of a multi-process run draws its own dropout
    masks, so only without dropout can its weights be compared with a single process's."""
    return make_teacher(tmp_path_factory.mktemp("dropout_free_teacher"), tokenizer_dir, mlm_head=False,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="session")
def mlm_teacher_dir(tmp_path_factory, tokenizer_dir):
    """A tiny BERT with an MLM head."""
    return make_teacher(tmp_path_factory.mktemp("mlm_teacher"), tokenizer_dir, mlm_head=True)


def expect_usage_error(capsys, main, argv, message, out=None):
    """main(argv) must stop with exit status 2, one stderr line holding message, and no output left."""
    from common.run import run_cli
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli(main, argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    if out is not None:
        assert not out.exists() and not out.with_name(out.name + ".partial").exists()
