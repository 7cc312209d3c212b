import pytest
import torch
from transformers import AutoTokenizer

from common.generic import load_generic
from common.massive import load_massive
from common.run import UsageError
from common.transfer import GENERIC, TARGET, PackedSequences, TokenSource, TransferStream, mask_tokens


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def make_stream(tokenizer, data_dir, ratio, seq_length=64, streaming=False):
    corpus = load_generic(data_dir / "wiki.jsonl", streaming=streaming)
    utts, _ = load_massive(data_dir / "massive", locales=["en-US", "ja-JP"], splits=["train"])
    generic = PackedSequences(TokenSource("generic", tokenizer, 0, corpus.documents, corpus.open_stream), seq_length)
    target = PackedSequences(TokenSource("target", tokenizer, 1, [u.text for u in utts]), seq_length)
    return TransferStream(generic, target, ratio)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_measured_target_share_matches_ratio(tokenizer, data_dir, ratio):
    stream = make_stream(tokenizer, data_dir, ratio)
    seen = {GENERIC: 0, TARGET: 0}
    for _ in range(120):  # past one epoch of the target subset, so epoch wrap-around is covered
        batch, origins = stream.next_batch(8)
        for row, origin in zip(batch, origins):
            seen[origin] += int((row != tokenizer.pad_token_id).sum())
    share = seen[TARGET] / (seen[GENERIC] + seen[TARGET])
    assert abs(share - ratio) <= 0.02
    assert stream.target_share == pytest.approx(share)
    if 0 < ratio < 1:
        assert stream.sources[TARGET].state["epoch"] >= 1


def test_sequences_are_full_and_long_documents_are_cut(tokenizer, data_dir):
    stream = make_stream(tokenizer, data_dir, 0.0, seq_length=32)
    batch, _ = stream.next_batch(16)
    assert batch.shape == (16, 32)
    assert (batch[:, 0] == tokenizer.cls_token_id).all() and (batch[:, -1] == tokenizer.sep_token_id).all()
    assert (batch != tokenizer.pad_token_id).all()  # packing: no padding at all
    longest = max(len(d) for d in stream.sources[GENERIC].source.token_ids)
    assert longest > 30  # so these Wikipedia leads were cut into several sequences


def test_stream_state_resumes_exactly(tokenizer, data_dir):
    for streaming in (False, True):
        a = make_stream(tokenizer, data_dir, 0.3, streaming=streaming)
        a.next_batch(30)
        state = a.state_dict()
        expected, _ = a.next_batch(30)
        b = make_stream(tokenizer, data_dir, 0.3, streaming=streaming)
        b.load_state_dict(state)
        got, _ = b.next_batch(30)
        assert torch.equal(got, expected)


def test_mixing_errors(tokenizer, data_dir):
    stream = make_stream(tokenizer, data_dir, 0.5)
    generic, target = stream.sources[GENERIC], stream.sources[TARGET]
    with pytest.raises(UsageError, match=r"in \[0, 1\]"):
        TransferStream(generic, target, 1.5)
    with pytest.raises(UsageError, match="needs generic data"):
        TransferStream(None, target, 0.3)
    with pytest.raises(UsageError, match="needs target data"):
        TransferStream(generic, None, 0.3)
    with pytest.raises(UsageError, match="empty"):
        TokenSource("target", tokenizer, 0, ["", "   "])


def test_generic_plain_text_and_errors(tmp_path):
    (tmp_path / "docs.txt").write_text("first document\n\nsecond document\n")
    assert load_generic(tmp_path / "docs.txt").documents == ["first document", "second document"]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(UsageError, match=r"bad\.jsonl:2: no field 'text'"):
        load_generic(tmp_path / "bad.jsonl")
    with pytest.raises(UsageError, match="no such file"):
        load_generic(tmp_path / "missing.jsonl")


def test_masking_follows_bert_recipe(tokenizer):
    ids = torch.randint(10, len(tokenizer), (64, 128))
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    masked, labels = mask_tokens(ids, tokenizer, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    assert torch.equal(labels[chosen], ids[chosen])
    share_masked = (masked[chosen] == tokenizer.mask_token_id).float().mean().item()
    assert 0.75 < share_masked < 0.85
    assert torch.equal(masked[~chosen], ids[~chosen])
