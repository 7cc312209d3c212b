import math

import pytest
import torch
from transformers import BertConfig, BertModel

from common.losses import (DistillationLoss, EncoderView, OutputAdaptor, attention_relation_loss,
                           hidden_cosine_loss, hidden_mse_loss, kl_div_loss, layer_map)


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    logits = torch.randn(2, 5, 11)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert kl_div_loss(logits, logits.clone(), mask, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 5, 11, requires_grad=True)
    loss = kl_div_loss(student, logits, mask, 2.0)
    assert loss.item() > 0
    loss.backward()
    assert student.grad.abs().sum() > 0


def test_hidden_losses_zero_when_equal_and_gradients_reach_the_projection():
    teacher = torch.randn(2, 7, 12)
    mask = torch.ones(2, 7, dtype=torch.bool)
    assert hidden_cosine_loss(teacher, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert hidden_mse_loss(teacher, teacher, mask).item() == 0.0
    loss_fn = DistillationLoss(8, 12, [(1, 1)], {"cos": 1.0, "mse": 1.0})
    student = torch.randn(2, 7, 8, requires_grad=True)
    total, parts = loss_fn(EncoderView((None, student)), EncoderView((None, teacher)), mask.long())
    assert set(parts) == {"cos", "mse"} and total.item() > 0
    total.backward()
    assert loss_fn.projections[0].weight.grad.abs().sum() > 0 and student.grad.abs().sum() > 0


def test_padding_is_ignored():
    teacher = torch.randn(1, 4, 6)
    student = teacher.clone()
    student[0, 3] = 100.0  # a padded position
    mask = torch.tensor([[1, 1, 1, 0]]).bool()
    assert hidden_mse_loss(student, teacher, mask).item() == 0.0


def test_attention_relation_loss_zero_for_same_relations_and_works_across_widths():
    qkv = {r: torch.randn(2, 6, 16) for r in ("query", "key", "value")}
    mask = torch.ones(2, 6, dtype=torch.long)
    assert attention_relation_loss(qkv, qkv, mask, 4).item() == pytest.approx(0.0, abs=1e-6)
    student = {r: torch.randn(2, 6, 8, requires_grad=True) for r in qkv}
    loss = attention_relation_loss(student, qkv, mask, 4)
    assert loss.item() > 0
    loss.backward()
    assert all(t.grad.abs().sum() > 0 for t in student.values())


def test_adaptor_exposes_hidden_states_and_qkv_of_a_bert():
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32))
    view = OutputAdaptor(model, capture_qkv_layer=1)(torch.randint(0, 50, (2, 5)), torch.ones(2, 5, dtype=torch.long))
    assert len(view.hidden_states) == 3 and view.logits is None
    assert {k: tuple(v.shape) for k, v in view.qkv.items()} == {r: (2, 5, 16) for r in ("query", "key", "value")}


def test_layer_map():
    assert layer_map(3, 6, "last") == [(3, 6)]
    assert layer_map(3, 6, "uniform") == [(1, 2), (2, 4), (3, 6)]


# Hand-computed references: plain Python over lists, one real position at a time, so that they share
# nothing with the vectorised losses but the definitions.
def softmax(xs):
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    return [e / sum(exps) for e in exps]


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def project(weight, bias, x):
    return [sum(w * xi for w, xi in zip(row, x)) + b for row, b in zip(weight, bias)]


def relation_kls(student, teacher, real, heads):
    """MiniLMv2, one sequence: per head and real query row, KL(teacher || student) of the softmax
    over real keys of x_i.x_j / sqrt(d)."""
    terms = []
    for h in range(heads):
        def rows(x):
            d = len(x[0]) // heads
            part = [v[h * d:(h + 1) * d] for v in x]
            return [softmax([sum(a * b for a, b in zip(part[i], part[j])) / math.sqrt(d) for j in real]) for i in real]
        terms += [kl(t, s) for s, t in zip(rows(student), rows(teacher))]
    return terms


def test_every_kd_loss_equals_its_hand_computed_value_and_ignores_padding():
    torch.manual_seed(3)
    batch, seq, vocab, s_width, t_width, temperature = 2, 4, 5, 4, 6, 2.0
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    real = [(b, i) for b in range(batch) for i in range(seq) if mask[b, i]]
    s_logits, t_logits = torch.randn(batch, seq, vocab), torch.randn(batch, seq, vocab)
    s_hidden, t_hidden = torch.randn(batch, seq, s_width), torch.randn(batch, seq, t_width)
    s_qkv = {r: torch.randn(batch, seq, s_width) for r in ("query", "key", "value")}
    t_qkv = {r: torch.randn(batch, seq, t_width) for r in ("query", "key", "value")}
    weights = {"kl": 1.0, "cos": 0.5, "mse": 2.0, "attn": 3.0}
    loss_fn = DistillationLoss(s_width, t_width, [(1, 1)], weights, temperature=temperature, relation_heads=2)
    W, B = loss_fn.projections[0].weight.tolist(), loss_fn.projections[0].bias.tolist()

    expected = {}
    expected["kl"] = temperature ** 2 * sum(
        kl(softmax([v / temperature for v in t_logits[b, i].tolist()]),
           softmax([v / temperature for v in s_logits[b, i].tolist()])) for b, i in real) / len(real)
    projected = {(b, i): project(W, B, s_hidden[b, i].tolist()) for b, i in real}
    expected["cos"] = sum(1 - cosine(projected[p], t_hidden[p].tolist()) for p in real) / len(real)
    expected["mse"] = sum((x - y) ** 2 for p in real for x, y in zip(projected[p], t_hidden[p].tolist())) \
        / (len(real) * t_width)
    relations = []
    for role in ("query", "key", "value"):
        per_row = []  # the mean over real rows of every sequence and every head
        for b in range(batch):
            keep = [i for i in range(seq) if mask[b, i]]
            per_row += relation_kls(s_qkv[role][b].tolist(), t_qkv[role][b].tolist(), keep, 2)
        relations.append(sum(per_row) / len(per_row))
    expected["attn"] = sum(relations) / 3

    def losses(pad_value):
        """The losses with every padded position of every input overwritten by pad_value."""
        pad = ~mask.bool()
        fill = lambda x: x.masked_fill(pad[..., None], pad_value)  # noqa: E731
        view = lambda logits, hidden, qkv: EncoderView((None, fill(hidden)), fill(logits),  # noqa: E731
                                                       {r: fill(v) for r, v in qkv.items()})
        with torch.no_grad():
            return loss_fn(view(s_logits, s_hidden, s_qkv), view(t_logits, t_hidden, t_qkv), mask)

    total, parts = losses(pad_value=0.0)
    assert set(parts) == set(expected)
    for name, value in expected.items():
        assert parts[name].item() == pytest.approx(value, rel=1e-5), name
    assert total.item() == pytest.approx(sum(weights[k] * v for k, v in expected.items()), rel=1e-5)
    for pad_value in (37.0, -1e4):  # whatever the padded positions hold
        total_padded, parts_padded = losses(pad_value)
        assert {k: v.item() for k, v in parts_padded.items()} == pytest.approx({k: v.item() for k, v in parts.items()})


def test_kl_over_masked_positions_only_when_mlm_labels_are_given():
    torch.manual_seed(4)
    s_logits, t_logits = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    loss_fn = DistillationLoss(4, 4, [(1, 1)], {"kl": 1.0}, temperature=1.0)
    labels = torch.tensor([[-100, 2, -100]])
    view = lambda logits: EncoderView((None, None), logits)  # noqa: E731
    _, parts = loss_fn(view(s_logits), view(t_logits), torch.ones(1, 3, dtype=torch.long), labels)
    assert parts["kl"].item() == pytest.approx(kl(softmax(t_logits[0, 1].tolist()), softmax(s_logits[0, 1].tolist())),
                                               rel=1e-5)
