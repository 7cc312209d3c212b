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
