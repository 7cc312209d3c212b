"""Downstream tasks on MASSIVE: labels, encoding, batching and prediction for DC and ICNER.

Prediction takes a `logits_fn(input_ids, attention_mask) -> dict of numpy arrays`, so the same
decoding serves PyTorch models and ONNX Runtime sessions.
"""
import json
from pathlib import Path

import numpy as np
import torch

from common.bio import slot_label_names, spans_from_tags, token_tags
from common.run import UsageError

TASKS = ("dc", "icner")
LABELS_FILE = "labels.json"


def build_labels(task, train_utterances):
    """Label maps from the train partition only; saved with the model."""
    labels = {"task": task, "domains": sorted({u.scenario for u in train_utterances})}
    if task == "icner":
        labels["intents"] = sorted({u.intent for u in train_utterances})
        labels["slots"] = slot_label_names({s.type for u in train_utterances for s in u.slots})
    return labels


def check_label_overlap(task, known, utterances, what, data_flag="--data"):
    """A model (or a train split) that knows none of the data's labels can only score 0: refuse it.
    A partial overlap is one line on stderr; those utterances still count as errors."""
    import sys
    key, name = ("domains", "domains") if task == "dc" else ("intents", "intents")
    seen = {u.scenario if task == "dc" else u.intent for u in utterances}
    unknown = sorted(seen - set(known[key]))
    if seen and len(unknown) == len(seen):
        raise UsageError(f"{data_flag}: none of its {len(seen)} {name} ({', '.join(unknown[:5])}"
                         f"{', ...' if len(unknown) > 5 else ''}) is one {what} knows ({len(known[key])} {name}: "
                         f"{', '.join(known[key][:5])}{', ...' if len(known[key]) > 5 else ''}): give data with its labels")
    if unknown:
        print(f"note: {len(unknown)} of the {len(seen)} {name} in {data_flag} are unknown to {what} "
              f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}); their utterances count as errors",
              file=sys.stderr)
    return unknown


def save_labels(folder, labels):
    (Path(folder) / LABELS_FILE).write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n")


def load_labels(folder):
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise UsageError(f"{folder}: not a finetuned DC/ICNER model (no {LABELS_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not JSON ({err}); the file may be truncated") from None


def encode(task, tokenizer, utterances, labels, max_length):
    """Features of each utterance. A label unseen in training becomes -1 (target) / -100 (slots):
    it can never be predicted, so it counts as an error, never a crash."""
    enc = tokenizer([u.utt for u in utterances], truncation=True, max_length=max_length,
                    return_offsets_mapping=True)
    if task == "dc":
        index = {d: i for i, d in enumerate(labels["domains"])}
        return [{"input_ids": ids, "label": index.get(u.scenario, -1)}
                for ids, u in zip(enc["input_ids"], utterances)]
    intents = {d: i for i, d in enumerate(labels["intents"])}
    slots = {d: i for i, d in enumerate(labels["slots"])}
    features = []
    for ids, offsets, u in zip(enc["input_ids"], enc["offset_mapping"], utterances):
        tags = token_tags(offsets, u.slots)
        features.append({"input_ids": ids, "label": intents.get(u.intent, -1),
                         "slot_labels": [-100 if t is None else slots.get(t, -100) for t in tags]})
    return features


def collate(features, pad_id):
    """Pad a list of features to the longest one."""
    width = max(len(f["input_ids"]) for f in features)
    batch = {"input_ids": torch.full((len(features), width), pad_id, dtype=torch.long),
             "attention_mask": torch.zeros((len(features), width), dtype=torch.long),
             "labels": torch.tensor([f["label"] for f in features])}
    if "slot_labels" in features[0]:
        batch["slot_labels"] = torch.full((len(features), width), -100, dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        batch["input_ids"][i, :n] = torch.tensor(f["input_ids"])
        batch["attention_mask"][i, :n] = 1
        if "slot_labels" in f:
            batch["slot_labels"][i, :n] = torch.tensor(f["slot_labels"])
    return batch


def predict(task, logits_fn, tokenizer, texts, labels, max_length, batch_size=64):
    """DC: a domain per text. ICNER: (intent, slots as character spans) per text."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    results = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        chunk = [texts[i] for i in idx]
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=True,
                        return_offsets_mapping=True, return_tensors="np")
        logits = logits_fn(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        if task == "dc":
            for i, k in zip(idx, logits["logits"].argmax(-1)):
                results[i] = labels["domains"][k]
            continue
        intents = logits["intent_logits"].argmax(-1)
        slot_ids = logits["slot_logits"].argmax(-1)
        for row, i in enumerate(idx):
            n = int(enc["attention_mask"][row].sum())
            offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"][row][:n]]
            tags = [labels["slots"][k] for k in slot_ids[row][:n]]
            results[i] = (labels["intents"][intents[row]], spans_from_tags(offsets, tags, texts[i]))
    return results


def torch_logits_fn(model, device="cpu"):
    """logits_fn of a PyTorch model (eval mode, no grad)."""
    def run(input_ids, attention_mask):
        with torch.no_grad():
            outputs = model(input_ids=torch.from_numpy(input_ids).to(device),
                            attention_mask=torch.from_numpy(attention_mask).to(device))
        return {k: v.float().cpu().numpy() for k, v in outputs.items() if k != "loss" and v is not None}
    return run


def score(task, utterances, predictions, bootstrap=1000):
    """Metrics of predictions against the gold utterances (common.metrics)."""
    from common.metrics import dc_metrics, icner_metrics
    locales = [u.locale for u in utterances]
    if task == "dc":
        return dc_metrics([u.scenario for u in utterances], predictions, groups=locales, bootstrap=bootstrap)
    examples = [(u.utt, u.intent, u.slots, intent, slots) for u, (intent, slots) in zip(utterances, predictions)]
    return icner_metrics(examples, domains=[u.scenario for u in utterances], locales=locales, bootstrap=bootstrap)


def headline(task, metrics):
    """The dev-set number model selection maximises."""
    return metrics["accuracy"] if task == "dc" else metrics["exact_match"]


def per_utterance(task, utterances, predictions):
    """Per-utterance counts (common.metrics.icner_items; DC: correct) with the utterance ids, for
    bootstraps that pair the same test utterances across models (aggregate.py)."""
    from common.metrics import icner_items
    if task == "dc":
        items = {"correct": [int(u.scenario == p) for u, p in zip(utterances, predictions)]}
    else:
        examples = [(u.utt, u.intent, u.slots, i, s) for u, (i, s) in zip(utterances, predictions)]
        items = {k: v.astype(int).tolist() for k, v in icner_items(examples).items()}
    return {"id": [u.id for u in utterances], "locale": [u.locale for u in utterances], **items}
