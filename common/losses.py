"""Distillation losses, and the one adaptor that maps any encoder's outputs to what they need.

The adaptor (EncoderView) is the only place that knows how a model exposes hidden states, MLM
logits and its attention projections; the losses see plain tensors.
"""
import re
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from common.run import UsageError

# Where each architecture family keeps the query/key/value projections of layer N.
_QKV_NAMES = [
    (r"(?:^|\.)layer\.{n}\.attention\.self\.(query|key|value)$", ("query", "key", "value")),  # BERT, RoBERTa, XLM-R, ELECTRA
    (r"(?:^|\.)layer\.{n}\.attention\.(q_lin|k_lin|v_lin)$", ("q_lin", "k_lin", "v_lin")),  # DistilBERT
]


@dataclass
class EncoderView:
    hidden_states: tuple                   # embeddings, then every layer: [batch, seq, width]
    logits: Optional[torch.Tensor] = None  # MLM logits [batch, seq, vocab], None without an MLM head
    qkv: dict = field(default_factory=dict)  # "query"/"key"/"value" of the relation layer


class OutputAdaptor:
    """Runs a model and returns an EncoderView; captures q/k/v of one layer with forward hooks."""

    def __init__(self, model, capture_qkv_layer=None, want_logits=True):
        self.model = model
        # Without a logit loss, run the bare encoder: an MLM head over a 30k vocabulary costs
        # about as much compute as a small student's whole encoder.
        self.run_model = model if want_logits else getattr(model, "base_model", model)
        self._captured = {}
        if capture_qkv_layer is not None:
            self._hook_qkv(capture_qkv_layer)

    def _hook_qkv(self, layer):
        for pattern, names in _QKV_NAMES:
            regex = re.compile(pattern.format(n=layer))
            found = {}
            for name, module in self.model.named_modules():
                match = regex.search(name)
                if match:
                    found[("query", "key", "value")[names.index(match.group(1))]] = module
            if len(found) == 3:
                for role, module in found.items():
                    module.register_forward_hook(self._store(role))
                return
        raise UsageError(f"attention-relation loss: cannot find the query/key/value projections of "
                         f"{type(self.model).__name__} layer {layer}")

    def _store(self, role):
        def hook(module, inputs, output):
            self._captured[role] = output
        return hook

    def __call__(self, input_ids, attention_mask):
        self._captured = {}
        outputs = self.run_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return EncoderView(hidden_states=outputs.hidden_states, logits=getattr(outputs, "logits", None),
                           qkv=dict(self._captured))


def kl_div_loss(student_logits, teacher_logits, mask, temperature):
    """Soft-target KL(teacher || student) at temperature T, scaled by T^2 (Hinton et al.)."""
    s = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[mask].float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature ** 2


def mlm_loss(logits, labels, reduction="mean"):
    """The masked-LM loss of every loop: cross-entropy on the positions whose label is not -100."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100,
                           reduction=reduction)


def hidden_cosine_loss(student_hidden, teacher_hidden, mask):
    """1 - cosine between (projected) student and teacher token states, over real tokens."""
    cos = F.cosine_similarity(student_hidden[mask].float(), teacher_hidden[mask].float(), dim=-1)
    return (1 - cos).mean()


def hidden_mse_loss(student_hidden, teacher_hidden, mask):
    return F.mse_loss(student_hidden[mask].float(), teacher_hidden[mask].float())


def attention_relation_loss(student_qkv, teacher_qkv, attention_mask, relation_heads):
    """MiniLMv2 self-attention relations: KL between teacher and student softmax(x x^T / sqrt(d))
    for x in query, key, value, split into `relation_heads` heads so widths need not match."""
    keys_out = (attention_mask == 0)[:, None, None, :]
    rows = attention_mask.bool()
    total = 0.0
    for role in ("query", "key", "value"):
        log_rel = []
        for x in (student_qkv[role], teacher_qkv[role]):
            batch, seq, width = x.shape
            x = x.float().view(batch, seq, relation_heads, width // relation_heads).transpose(1, 2)
            scores = x @ x.transpose(-1, -2) / (width // relation_heads) ** 0.5
            log_rel.append(F.log_softmax(scores.masked_fill(keys_out, float("-inf")), dim=-1))
        s, t = log_rel
        kl = (t.exp() * (t - s)).masked_fill(keys_out, 0.0).sum(-1)  # [batch, heads, seq]
        total = total + kl.transpose(1, 2)[rows].mean()
    return total / 3


def layer_map(student_layers, teacher_layers, mode):
    """Pairs (student index, teacher index) into hidden_states (0 = embeddings)."""
    if mode == "last":
        return [(student_layers, teacher_layers)]
    if mode == "uniform":  # student layer i <- teacher layer i*T/S, as in DistilBERT/TinyBERT
        return [(i, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)]
    raise UsageError(f"unknown --hidden-layers {mode!r} (use last or uniform)")


class DistillationLoss(nn.Module):
    """Weighted sum of the distillation losses; owns the learned width projections."""

    def __init__(self, student_width, teacher_width, layers, weights, temperature=2.0, relation_heads=None):
        super().__init__()
        self.layers, self.weights, self.temperature = layers, weights, temperature
        self.relation_heads = relation_heads
        # A learned linear map from student to teacher width for each distilled layer; identity
        # when the widths agree, so a same-width student is compared to the teacher as is.
        self.projections = nn.ModuleList(
            nn.Linear(student_width, teacher_width) if student_width != teacher_width else nn.Identity()
            for _ in layers)

    def forward(self, student, teacher, attention_mask, mlm_labels=None):
        mask = attention_mask.bool()
        w = self.weights
        parts = {}
        if w.get("kl"):
            kl_mask = mlm_labels != -100 if mlm_labels is not None else mask
            parts["kl"] = kl_div_loss(student.logits, teacher.logits, kl_mask, self.temperature)
        if w.get("mlm"):
            parts["mlm"] = mlm_loss(student.logits, mlm_labels)
        if w.get("cos") or w.get("mse"):
            pairs = [(proj(student.hidden_states[s]), teacher.hidden_states[t])
                     for proj, (s, t) in zip(self.projections, self.layers)]
            if w.get("cos"):
                parts["cos"] = sum(hidden_cosine_loss(s, t, mask) for s, t in pairs) / len(pairs)
            if w.get("mse"):
                parts["mse"] = sum(hidden_mse_loss(s, t, mask) for s, t in pairs) / len(pairs)
        if w.get("attn"):
            parts["attn"] = attention_relation_loss(student.qkv, teacher.qkv, attention_mask, self.relation_heads)
        total = sum(w[name] * value for name, value in parts.items())
        return total, parts
