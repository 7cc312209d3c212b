"""finetune.py --task mlm: teacher adaptation and pretraining from scratch."""
import json

from transformers import AutoModelForMaskedLM, AutoTokenizer

import distill
import finetune
from conftest import write_jsonl, read_lines, WIKI


def test_adaptation_lowers_dev_mlm_loss_and_adds_a_head(teacher_dir, data_dir, tmp_path):
    out = tmp_path / "adapted"
    finetune.main(["--task", "mlm", "--model", str(teacher_dir), "--data", str(data_dir / "massive"),
                   "--locales", "en-US", "--output-dir", str(out), "--max-steps", "40", "--lr", "1e-3",
                   "--batch-size", "16", "--max-seq-length", "32", "--head-warmup-steps", "20"])
    run = json.loads((out / "run.json").read_text())
    assert run["mlm_head_added"] and run["head_warmup_steps"] == 20
    assert run["dev_mlm_loss_after"] < run["dev_mlm_loss_before"] - 0.2
    assert run["data"]["target_share"] == 1.0
    AutoModelForMaskedLM.from_pretrained(out)


def test_multilingual_teacher_from_scratch_then_logit_kd(teacher_dir, data_dir, tmp_path):
    """An XLM-R style teacher pretrained here with a trained unigram tokenizer; it has an MLM head,
    so distill.py can use soft-target KD from it."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for lang in ("en", "es", "fr"):
        write_jsonl(texts / f"{lang}.jsonl", read_lines(WIKI / f"{lang}.jsonl", 60))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "intermediate_size": 64,
                                  "max_position_embeddings": 66}))
    teacher = tmp_path / "ml_teacher"
    finetune.main(["--task", "mlm", "--from-scratch", "--model", str(config), "--text-data", str(texts),
                   "--vocab-size", "800", "--output-dir", str(teacher), "--max-steps", "30", "--lr", "2e-3",
                   "--batch-size", "16", "--max-seq-length", "64"])
    run = json.loads((teacher / "run.json").read_text())
    assert run["from_scratch"] and run["dev_mlm_loss_after"] < run["dev_mlm_loss_before"]
    tok = AutoTokenizer.from_pretrained(teacher)
    assert type(tok).__name__ == "XLMRobertaTokenizerFast" and len(tok) == 800
    student = tmp_path / "student"
    # en-US: its tokenizer was trained on en/es/fr text, and distill.py refuses text it reads as <unk>
    # (ja-JP and de-DE: 5.3% of the pieces)
    distill.main(["--teacher", str(teacher), "--target-data", str(data_dir / "massive"), "--locales", "en-US",
                  "--target-ratio", "1", "--output-dir", str(student), "--max-steps", "3", "--batch-size", "4",
                  "--max-seq-length", "32", "--student-layers", "1", "--student-hidden", "16", "--student-heads", "2",
                  "--alpha-kl", "1", "--alpha-mse", "0", "--alpha-cos", "0"])
    run = json.loads((student / "run.json").read_text())
    assert run["losses"]["weights"]["kl"] == 1 and run["losses"]["masking"]
    assert run["loss_curve"] and all(c["kl"] > 0 for c in run["loss_curve"])  # soft targets from the teacher's head


def test_masked_positions_only_loss_equals_the_full_head():
    import torch
    from transformers import BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

    from common.pretraining import masked_lm_loss
    for model_cls, config_cls in ((BertForMaskedLM, BertConfig), (XLMRobertaForMaskedLM, XLMRobertaConfig)):
        model = model_cls(config_cls(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)).eval()
        ids = torch.randint(5, 100, (2, 7))
        labels = torch.full_like(ids, -100)
        labels[0, 2], labels[1, 4] = ids[0, 2], ids[1, 4]
        with torch.no_grad():
            assert torch.allclose(masked_lm_loss(model, ids, labels), model(input_ids=ids, labels=labels).loss)
