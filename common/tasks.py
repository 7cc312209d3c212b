"""The downstream tasks as objects: DC (domain or text classification) and ICNER (intent and slots).

A task knows its labels, how it encodes an utterance, its model, its loss, how it decodes logits,
how it scores predictions and the table it prints. Code outside this module looks a task up
(`TASKS[name]`, or `task_of(labels)` for a finetuned folder) and calls it; it does not branch on
the name. Decoding takes a `logits_fn(input_ids, attention_mask) -> dict of numpy arrays`, so the
same code serves PyTorch models and ONNX Runtime sessions.
"""
import json
import sys
from pathlib import Path

import numpy as np

from common.bio import ceiling_report, slot_ceiling, slot_label_names, spans_from_tags, token_tags
from common.jsonl import read_json
from common.run import UsageError

LABELS_FILE = "labels.json"


def _listed(names):
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")



def length_batches(texts, batch_size):
    """The texts' indices in batches of similar lengths (less padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def encode_batch(tokenizer, texts, max_length):
    """One padded batch as the models take it, with the offsets that slot decoding maps back."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_offsets_mapping=True,
                    return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64),
            "offset_mapping": enc["offset_mapping"]}


class Task:
    name = ""
    label_key = ""          # the labels.json list a prediction is checked against: "domains" or "intents"
    headline_metric = ""    # the dev metric model selection maximises
    headline_label = ""     # ... as a table names it
    per_domain = False      # one model per domain makes sense (finetune.py --domain, --all-domains)
    has_slots = False       # slot spans: a tokenizer can make some of them impossible (the ceiling)

    def gold(self, utterance):
        """The utterance's label for this task's label_key."""
        raise NotImplementedError

    def build_labels(self, train_utterances):
        """Label maps from the train split only; saved with the model."""
        return {"task": self.name, "domains": sorted({u.domain for u in train_utterances})}

    def check_label_overlap(self, known, utterances, what, data_flag="--data"):
        """A model (or a train split) that knows none of the data's labels can only score 0: refuse it.
        A partial overlap is one line on stderr; those utterances still count as errors."""
        noun, known_names = self.label_key, known[self.label_key]
        seen = {self.gold(u) for u in utterances}
        unknown = sorted(seen - set(known_names))
        if seen and len(unknown) == len(seen):
            raise UsageError(f"{data_flag}: none of its {len(seen)} {noun} ({_listed(unknown)}) is one {what} knows "
                             f"({len(known_names)} {noun}: {_listed(known_names)}): give data with its labels")
        if unknown:
            print(f"note: {len(unknown)} of the {len(seen)} {noun} in {data_flag} are unknown to {what} "
                  f"({_listed(unknown)}); their utterances count as errors", file=sys.stderr)
        return unknown

    def check_format(self, kind, sources):
        """Refuse, before reading it, a data format that cannot train or score this task."""

    def check_utterances(self, utterances, kind, sources):
        """Refuse utterances that cannot train or score this task."""

    def encode(self, tokenizer, utterances, labels, max_length):
        """Features of each utterance. A label unseen in training becomes -1 (target) / -100
        (slots): it can never be predicted, so it counts as an error, never a crash."""
        raise NotImplementedError

    def model_class(self):
        raise NotImplementedError

    def new_model(self, encoder, labels, slot_loss_coef=1.0):
        """The task's model on a pretrained encoder (a student, a teacher), its head new."""
        raise NotImplementedError

    def loss(self, model, batch):
        raise NotImplementedError

    def decode(self, logits, enc, rows, texts, labels):
        """The predictions of one tokenised batch: rows are its texts' indices."""
        raise NotImplementedError

    def predict(self, logits_fn, tokenizer, texts, labels, max_length, batch_size=64):
        """A prediction per text, in batches of similar lengths."""
        results = [None] * len(texts)
        for rows in length_batches(texts, batch_size):
            enc = encode_batch(tokenizer, [texts[i] for i in rows], max_length)
            for i, prediction in zip(rows, self.predict_encoded(logits_fn, enc, rows, texts, labels)):
                results[i] = prediction
        return results

    def predict_encoded(self, logits_fn, enc, rows, texts, labels):
        """The predictions of one batch already tokenised (encode_batch): rows are its texts' indices."""
        return self.decode(logits_fn(enc["input_ids"], enc["attention_mask"]), enc, rows, texts, labels)

    def score(self, utterances, predictions, bootstrap=1000):
        """Metrics of predictions against the gold utterances (common.metrics)."""
        raise NotImplementedError

    def headline(self, metrics):
        return metrics[self.headline_metric]

    def per_utterance(self, utterances, predictions):
        """Per-utterance counts with the utterance ids, for bootstraps that pair the same test
        utterances across models (aggregate.py)."""
        return {"id": [u.id for u in utterances], "locale": [u.locale for u in utterances],
                **self.items(utterances, predictions)}

    def ceiling(self, tokenizer, utterances, max_length):
        """What the tokenizer lets any model get right (None where the task has no such limit)."""
        return None

    def record(self, text, prediction):
        """A prediction as a service answers it."""
        raise NotImplementedError

    def export_onnx(self, model, tokenizer, out_dir):
        raise NotImplementedError

    def print_table(self, metrics):
        raise NotImplementedError


def _row(name, value, ci=None):
    ci_text = f"  [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci and ci[0] is not None else ""
    print(f"  {name:<18}{100 * value:7.2f}{ci_text}")


class DomainClassification(Task):
    """A class per utterance: MASSIVE's scenario (the paper's domain), or a classification
    dataset's label."""
    name, label_key, headline_metric, headline_label = "dc", "domains", "accuracy", "DC accuracy"

    def gold(self, utterance):
        return utterance.domain

    def check_utterances(self, utterances, kind, sources):
        from common.utterance import NO_DOMAIN
        if any(u.domain == NO_DOMAIN for u in utterances):
            raise UsageError(f"--task dc needs a class per utterance; {' '.join(sources)} is {kind} data without "
                             "domains (use CSV/TSV/JSONL classification data, or CoNLL with '# domain = X' comments)")

    def encode(self, tokenizer, utterances, labels, max_length):
        enc = tokenizer([u.text for u in utterances], truncation=True, max_length=max_length)
        index = {d: i for i, d in enumerate(labels["domains"])}
        return [{"input_ids": ids, "label": index.get(u.domain, -1)} for ids, u in zip(enc["input_ids"], utterances)]

    def model_class(self):
        from transformers import AutoModelForSequenceClassification
        return AutoModelForSequenceClassification

    def new_model(self, encoder, labels, slot_loss_coef=1.0):
        domains = labels["domains"]
        return self.model_class().from_pretrained(
            encoder, num_labels=len(domains), id2label=dict(enumerate(domains)),
            label2id={d: i for i, d in enumerate(domains)}, ignore_mismatched_sizes=True)

    def loss(self, model, batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     labels=batch["labels"].clamp(min=0)).loss  # train labels are always known

    def decode(self, logits, enc, rows, texts, labels):
        return [labels["domains"][k] for k in logits["logits"].argmax(-1)]

    def score(self, utterances, predictions, bootstrap=1000):
        from common.metrics import dc_metrics
        return dc_metrics([u.domain for u in utterances], predictions, groups=[u.locale for u in utterances],
                          bootstrap=bootstrap)

    def items(self, utterances, predictions):
        return {"correct": [int(u.domain == p) for u, p in zip(utterances, predictions)]}

    def record(self, text, prediction):
        return {"domain": prediction}

    def export_onnx(self, model, tokenizer, out_dir):
        from optimum.exporters.onnx import onnx_export_from_model
        onnx_export_from_model(model, out_dir, task="text-classification", do_validation=False)

    def print_table(self, m):
        print(f"DC on {m['n']} utterances (%, 95% CI)")
        _row("accuracy", m["accuracy"], m.get("accuracy_ci95"))
        _row("macro-F1", m["macro_f1"], m.get("macro_f1_ci95"))
        print("  per domain: " + ", ".join(f"{d} {100 * v:.1f}" for d, v in m["per_domain_accuracy"].items()))


class IntentAndSlots(Task):
    """ICNER: the intent of each utterance and its slots (BIO tags over tokens, character spans out)."""
    name, label_key, headline_metric, headline_label = "icner", "intents", "exact_match", "ICNER exact match"
    per_domain = has_slots = True

    def gold(self, utterance):
        return utterance.intent

    def build_labels(self, train_utterances):
        return {**super().build_labels(train_utterances), "intents": sorted({u.intent for u in train_utterances}),
                "slots": slot_label_names({s.type for u in train_utterances for s in u.slots})}

    def check_format(self, kind, sources):
        from common.task_data import CLASSIFICATION
        if kind in CLASSIFICATION:
            raise UsageError(f"--task icner needs slot annotations (MASSIVE, BIO or CoNLL); {' '.join(sources)} is "
                             f"{kind} classification data (use --task dc)")

    def encode(self, tokenizer, utterances, labels, max_length):
        enc = tokenizer([u.text for u in utterances], truncation=True, max_length=max_length,
                        return_offsets_mapping=True)
        intents = {d: i for i, d in enumerate(labels["intents"])}
        slots = {d: i for i, d in enumerate(labels["slots"])}
        features = []
        for ids, offsets, u in zip(enc["input_ids"], enc["offset_mapping"], utterances):
            tags = token_tags(offsets, u.slots)
            features.append({"input_ids": ids, "label": intents.get(u.intent, -1),
                             "slot_labels": [-100 if t is None else slots.get(t, -100) for t in tags]})
        return features

    def model_class(self):
        from common.joint_model import JointIntentSlotModel
        return JointIntentSlotModel

    def new_model(self, encoder, labels, slot_loss_coef=1.0):
        return self.model_class().from_encoder(encoder, labels["intents"], labels["slots"],
                                               slot_loss_coef=slot_loss_coef)

    def loss(self, model, batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     intent_labels=batch["labels"].clamp(min=0), slot_labels=batch["slot_labels"]).loss

    def decode(self, logits, enc, rows, texts, labels):
        intents, slot_ids = logits["intent_logits"].argmax(-1), logits["slot_logits"].argmax(-1)
        out = []
        for row, i in enumerate(rows):
            n = int(enc["attention_mask"][row].sum())
            offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"][row][:n]]
            tags = [labels["slots"][k] for k in slot_ids[row][:n]]
            out.append((labels["intents"][intents[row]], spans_from_tags(offsets, tags, texts[i])))
        return out

    def score(self, utterances, predictions, bootstrap=1000):
        from common.metrics import icner_metrics
        examples = [(u.text, u.intent, u.slots, intent, slots) for u, (intent, slots) in zip(utterances, predictions)]
        return icner_metrics(examples, domains=[u.domain for u in utterances], locales=[u.locale for u in utterances],
                             bootstrap=bootstrap)

    def items(self, utterances, predictions):
        from common.metrics import icner_items
        examples = [(u.text, u.intent, u.slots, i, s) for u, (i, s) in zip(utterances, predictions)]
        return {k: v.astype(int).tolist() for k, v in icner_items(examples).items()}

    def ceiling(self, tokenizer, utterances, max_length):
        return ceiling_report(slot_ceiling(tokenizer, utterances, max_length))

    def record(self, text, prediction):
        intent, slots = prediction
        return {"intent": intent, "slots": [{"type": s.type, "text": text[s.start:s.end], "start": s.start,
                                             "end": s.end} for s in slots]}

    def export_onnx(self, model, tokenizer, out_dir):
        from optimum.exporters.onnx import export

        from common.onnx_models import ONNX_FILE, joint_onnx_config
        export(model, joint_onnx_config(model.config), Path(out_dir) / ONNX_FILE)
        model.config.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    def print_table(self, m):
        print(f"ICNER on {m['n']} utterances (%, 95% CI)")
        _row("intent accuracy", m["intent_accuracy"], m.get("intent_accuracy_ci95"))
        _row("slot precision", m["slot_precision"])
        _row("slot recall", m["slot_recall"])
        _row("slot F1", m["slot_f1"], m.get("slot_f1_ci95"))
        _row("SemER", m["semer"], m.get("semer_ci95"))
        _row("exact match", m["exact_match"], m.get("exact_match_ci95"))
        print_ceiling(m["slot_ceiling"])
        if len(m.get("per_locale", {})) > 1:
            for locale, v in m["per_locale"].items():
                print(f"  {locale}: intent {100 * v['intent_accuracy']:.2f}, SemER {100 * v['semer']:.2f}, "
                      f"exact {100 * v['exact_match']:.2f}")


def print_ceiling(ceiling):
    """The tokenizer's limit, so that a user sees when it cannot do a language."""
    for locale, c in ceiling.items():
        if c["gold_slots"] and (locale != "all" or len(ceiling) > 2):
            print(f"  {locale}: the tokenizer represents {100 * c['share']:.2f}% of the gold slots exactly "
                  f"({c['representable']} of {c['gold_slots']}); no model on it can do better")


TASKS = {task.name: task for task in (DomainClassification(), IntentAndSlots())}


def task_of(labels):
    """The task of a finetuned or exported folder's labels.json."""
    if labels.get("task") not in TASKS:
        raise UsageError(f"labels.json: unknown task {labels.get('task')!r} (expected one of {', '.join(TASKS)})")
    return TASKS[labels["task"]]


def collate(features, pad_id):
    """Pad a list of features to the longest one."""
    import torch  # here, not above: predicting with an ONNX model imports no torch
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


def torch_logits_fn(model, device="cpu"):
    """logits_fn of a PyTorch model (eval mode, no grad)."""
    import torch

    def run(input_ids, attention_mask):
        with torch.no_grad():
            outputs = model(input_ids=torch.from_numpy(input_ids).to(device),
                            attention_mask=torch.from_numpy(attention_mask).to(device))
        return {k: v.float().cpu().numpy() for k, v in outputs.items() if k != "loss" and v is not None}
    return run


def save_labels(folder, labels):
    (Path(folder) / LABELS_FILE).write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n")


def load_labels(folder):
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise UsageError(f"{folder}: not a finetuned DC/ICNER model (no {LABELS_FILE})")
    return read_json(path)
