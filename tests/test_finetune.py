"""finetune.py and evaluate.py on tiny models and real MASSIVE lines."""
import json
from collections import Counter

import pytest
import torch

import evaluate
import finetune
from common.joint_model import JointIntentSlotModel
from common.massive import load_massive
from conftest import expect_usage_error


def ft_args(model, data_dir, out, task, *extra, locales=("en-US",)):
    return ["--task", task, "--model", str(model), "--data", str(data_dir / "massive"), "--locales", *locales,
            "--output-dir", str(out), "--batch-size", "16", "--lr", "3e-3", *extra]


def test_dc_learns_above_chance_and_evaluates(teacher_dir, data_dir, tmp_path):
    out = tmp_path / "dc"
    # all 12 epochs: early stopping on 76 dev utterances can stop a tiny model on a plateau, and
    # where it stops depends on float rounding (thread count), which made this test order-dependent
    finetune.main(ft_args(teacher_dir, data_dir, out, "dc", "--epochs", "12", "--patience", "100"))
    run = json.loads((out / "run.json").read_text())
    dev, _ = load_massive(data_dir / "massive", ["en-US"], ["dev"])
    majority = Counter(u.domain for u in dev).most_common(1)[0][1] / len(dev)
    assert run["dev_metrics"]["accuracy"] > majority + 0.15
    metrics_file = tmp_path / "m.json"
    evaluate.main(["--model", str(out), "--data", str(data_dir / "massive"), "--locales", "en-US",
                   "--output", str(metrics_file), "--bootstrap", "100"])
    m = json.loads(metrics_file.read_text())["metrics"]
    assert 0 <= m["accuracy_ci95"][0] <= m["accuracy"] <= m["accuracy_ci95"][1]
    assert set(m["per_domain_accuracy"]) == {u.domain for u in load_massive(data_dir / "massive", ["en-US"], ["test"])[0]}


def test_joint_model_save_load_same_predictions(teacher_dir, tmp_path):
    model = JointIntentSlotModel.from_encoder(teacher_dir, ["a", "b", "c"], ["O", "B-x", "I-x"]).eval()
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    before = model(input_ids=ids, attention_mask=mask)
    model.save_pretrained(tmp_path / "joint")
    loaded = JointIntentSlotModel.from_pretrained(tmp_path / "joint").eval()
    after = loaded(input_ids=ids, attention_mask=mask)
    assert torch.equal(before.intent_logits, after.intent_logits) and torch.equal(before.slot_logits, after.slot_logits)
    assert loaded.config.intent_labels == ["a", "b", "c"]


def test_icner_per_domain_and_multilingual_sentencepiece(tmp_path, data_dir):
    """An XLM-R style (SentencePiece unigram) tokenizer on ja-JP and de-DE, one model per domain."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    texts = [u.text for u in load_massive(data_dir / "massive", ["ja-JP", "de-DE"])[0]]
    sp = SentencePieceUnigramTokenizer()
    sp.train_from_iterator(texts, vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                           unk_token="<unk>")
    tok = XLMRobertaTokenizerFast(tokenizer_object=sp._tokenizer, bos_token="<s>", eos_token="</s>",
                                  sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                  mask_token="<mask>")
    from tokenizers import processors
    tok.backend_tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=False)
    enc_dir = tmp_path / "xlmr"
    XLMRobertaModel(XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=130, pad_token_id=1)).save_pretrained(enc_dir)
    tok.save_pretrained(enc_dir)
    out = tmp_path / "icner"
    finetune.main(ft_args(enc_dir, data_dir, out, "icner", "--all-domains", "--max-steps", "3",
                          locales=("ja-JP", "de-DE")))
    domains = {u.domain for u in load_massive(data_dir / "massive", ["ja-JP"], ["train"])[0]} & \
        {u.domain for u in load_massive(data_dir / "massive", ["ja-JP"], ["dev"])[0]}
    assert {p.name for p in out.iterdir() if p.is_dir()} == domains
    assert json.loads((out / "run.json").read_text())["per_domain"]
    metrics_file = tmp_path / "m.json"
    evaluate.main(["--model", str(out), "--data", str(data_dir / "massive"), "--locales", "ja-JP", "de-DE",
                   "--output", str(metrics_file), "--bootstrap", "0"])
    m = json.loads(metrics_file.read_text())["metrics"]
    # every test utterance is scored, each by its domain's model (a domain without one counts as wrong)
    test = load_massive(data_dir / "massive", ["ja-JP", "de-DE"], ["test"])[0]
    assert set(m["per_locale"]) == {"ja-JP", "de-DE"} and m["n"] == len(test)
    assert {loc: m["per_locale"][loc]["n"] for loc in m["per_locale"]} == Counter(u.locale for u in test)
    # the tokenizer's ceiling, per locale, in evaluate's output and in each model's run.json
    assert set(m["slot_ceiling"]) == {"ja-JP", "de-DE", "all"}
    assert 0 < m["slot_ceiling"]["all"]["representable"] <= m["slot_ceiling"]["all"]["gold_slots"]
    domain_run = json.loads((out / sorted(domains)[0] / "run.json").read_text())
    assert set(domain_run["slot_ceiling"]["dev"]) >= {"all"} and domain_run["slot_ceiling"]["train"]["all"]["gold_slots"] > 0



def test_bad_inputs(teacher_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "never"
    empty = tmp_path / "empty_model"
    empty.mkdir()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"partition": "train"}\n{oops\n')
    cases = [
        (ft_args(teacher_dir, data_dir, out, "ner"), "unknown --task 'ner'"),
        (ft_args(empty, data_dir, out, "dc"), "not a model folder (no config.json)"),
        (ft_args(teacher_dir, data_dir, out, "icner", "--domain", "cooking_xyz"), "--domain cooking_xyz: no train utterances"),
        (ft_args(teacher_dir, data_dir, out, "dc", locales=("xx-XX",)), "no file for locale"),
        (["--task", "dc", "--model", str(teacher_dir), "--data", str(bad), "--output-dir", str(out)],
         "bad.jsonl:1: missing field"),
    ]
    for argv, message in cases:
        expect_usage_error(capsys, finetune.main, argv, message, out)
    expect_usage_error(capsys, evaluate.main, ["--model", str(teacher_dir), "--data", str(data_dir / "massive")],
                 "not a finetuned DC/ICNER model")


def test_evaluating_with_the_wrong_task_fails(teacher_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "dc"
    finetune.main(ft_args(teacher_dir, data_dir, out, "dc", "--max-steps", "2"))
    expect_usage_error(capsys, evaluate.main, ["--model", str(out), "--data", str(data_dir / "massive"), "--task", "icner"],
                 "is a dc model, not icner")


def test_early_stopping_stops_patience_evaluations_after_the_best_and_keeps_the_best_model(teacher_dir, data_dir,
                                                                                            tmp_path):
    out = tmp_path / "dc"
    # a high learning rate on a tiny model: dev accuracy peaks within a few evaluations, then wobbles
    assert finetune.main(ft_args(teacher_dir, data_dir, out, "dc", "--lr", "2e-2", "--max-steps", "400",
                                 "--eval-steps", "2", "--patience", "3")) == 0
    run = json.loads((out / "run.json").read_text())
    devs = [h["dev"] for h in run["history"]]
    best = max(devs)
    best_at = devs.index(best)  # the first evaluation at the best: a tie is no improvement
    assert run["stopped_early"] and run["steps"] < 400
    assert run["best_step"] == run["history"][best_at]["step"]
    assert len(devs) == best_at + 1 + 3 and run["steps"] == run["best_step"] + 3 * 2  # 3 evaluations without gain
    assert devs[-1] < best  # so that the model kept is told apart from the last one
    # the folder holds the best step's model: scoring it on dev again gives the best, not the last
    metrics = tmp_path / "dev.json"
    evaluate.main(["--model", str(out), "--data", str(data_dir / "massive"), "--locales", "en-US", "--split", "dev",
                   "--output", str(metrics), "--bootstrap", "0"])
    assert round(json.loads(metrics.read_text())["metrics"]["accuracy"], 5) == best == \
        round(run["dev_metrics"]["accuracy"], 5)


def test_gradient_accumulation_trains_the_weights_of_the_larger_batch(dropout_free_teacher_dir, data_dir, tmp_path):
    """2 micro-batches of 8 per step, against 1 batch of 16: the same rows, the same mean gradient."""
    from safetensors.torch import load_file
    args = lambda out, *extra: ft_args(dropout_free_teacher_dir, data_dir, out, "dc", "--max-steps", "6",  # noqa: E731
                                       "--eval-steps", "6", *extra)
    finetune.main(args(tmp_path / "batch16"))
    finetune.main([a if a != "16" else "8" for a in args(tmp_path / "accum2", "--grad-accum", "2")])
    a, b = load_file(tmp_path / "batch16" / "model.safetensors"), load_file(tmp_path / "accum2" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5, msg=key)
    run = json.loads((tmp_path / "accum2" / "run.json").read_text())
    assert run["args"]["grad_accum"] == 2 and run["args"]["batch_size"] == 8


def test_the_icner_loss_is_intent_ce_plus_slot_loss_coef_times_slot_ce(teacher_dir, data_dir, tmp_path):
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = JointIntentSlotModel.from_encoder(teacher_dir, ["a", "b", "c"], ["O", "B-x", "I-x"],
                                              slot_loss_coef=0.25).eval()
    ids = torch.randint(5, 100, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    intents = torch.tensor([0, 2])
    slots = torch.tensor([[-100, 0, 1, 2, 0, -100], [-100, 1, 0, -100, -100, -100]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, intent_labels=intents, slot_labels=slots)
    real = slots != -100
    expected = F.cross_entropy(out.intent_logits, intents) + 0.25 * F.cross_entropy(out.slot_logits[real], slots[real])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # finetune.py's flag reaches the model it trains and saves
    finetune.main(ft_args(teacher_dir, data_dir, tmp_path / "icner", "icner", "--max-steps", "1",
                          "--slot-loss-coef", "0.25"))
    assert JointIntentSlotModel.from_pretrained(tmp_path / "icner").config.slot_loss_coef == 0.25


def test_the_default_learning_rate_is_the_profiles_for_heads_and_the_gentler_one_for_mlm():
    # by hand, without --lr, a finetuned teacher should match the study's (FT_LR 3e-4), not 1e-4
    base = ["--model", "m", "--data", "d", "--output-dir", "o"]
    assert finetune.parse_args(["--task", "icner", *base]).lr == 3e-4
    assert finetune.parse_args(["--task", "dc", *base]).lr == 3e-4
    assert finetune.parse_args(["--task", "mlm", *base]).lr == 1e-4
    assert finetune.parse_args(["--task", "dc", *base, "--lr", "2e-5"]).lr == 2e-5
