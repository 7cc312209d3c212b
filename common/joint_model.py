"""The joint intent + slot model: any transformers encoder, an intent head on the first token
and a BIO slot head on every token. A PreTrainedModel with its own config class, so
`JointIntentSlotModel.from_pretrained(folder)` (and AutoModel, once this module is imported) work.
"""
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class JointIntentSlotConfig(PretrainedConfig):
    model_type = "kd-joint-intent-slot"
    sub_configs = {"encoder": AutoConfig}

    def __init__(self, encoder=None, intent_labels=(), slot_labels=(), slot_loss_coef=1.0,
                 classifier_dropout=0.1, **kwargs):
        if isinstance(encoder, dict):
            encoder = AutoConfig.for_model(**encoder)
        self.encoder = encoder
        self.intent_labels, self.slot_labels = list(intent_labels), list(slot_labels)
        self.slot_loss_coef, self.classifier_dropout = slot_loss_coef, classifier_dropout
        super().__init__(**kwargs)

    def to_dict(self):
        out = super().to_dict()
        if isinstance(self.encoder, PretrainedConfig):
            out["encoder"] = self.encoder.to_dict()
        return out


@dataclass
class JointOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    intent_logits: torch.Tensor = None
    slot_logits: torch.Tensor = None


class JointIntentSlotModel(PreTrainedModel):
    config_class = JointIntentSlotConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config):
        super().__init__(config)
        try:  # the pooler is unused here: leave it out where the architecture allows
            self.encoder = AutoModel.from_config(config.encoder, add_pooling_layer=False)
        except TypeError:
            self.encoder = AutoModel.from_config(config.encoder)
        width = config.encoder.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.intent_head = nn.Linear(width, len(config.intent_labels))
        self.slot_head = nn.Linear(width, len(config.slot_labels))
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear) and module in (self.intent_head, self.slot_head):
            module.weight.data.normal_(0.0, getattr(self.config.encoder, "initializer_range", 0.02))
            module.bias.data.zero_()

    @classmethod
    def from_encoder(cls, encoder_name_or_path, intent_labels, slot_labels, **kwargs):
        """A new joint model whose encoder weights come from a pretrained encoder."""
        encoder = AutoModel.from_pretrained(encoder_name_or_path)
        config = JointIntentSlotConfig(encoder=encoder.config, intent_labels=intent_labels,
                                       slot_labels=slot_labels, **kwargs)
        model = cls(config)
        missing = model.encoder.load_state_dict(encoder.state_dict(), strict=False).missing_keys
        if [k for k in missing if "pooler" not in k]:
            raise ValueError(f"encoder weights do not fit: missing {missing[:3]}")
        return model

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, intent_labels=None,
                slot_labels=None, **kwargs):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.dropout(self.encoder(**inputs).last_hidden_state)
        intent_logits = self.intent_head(hidden[:, 0])
        slot_logits = self.slot_head(hidden)
        loss = None
        if intent_labels is not None and slot_labels is not None:
            ce = nn.functional.cross_entropy
            loss = ce(intent_logits, intent_labels) + self.config.slot_loss_coef * ce(
                slot_logits.view(-1, slot_logits.size(-1)), slot_labels.view(-1), ignore_index=-100)
        return JointOutput(loss=loss, intent_logits=intent_logits, slot_logits=slot_logits)


AutoConfig.register(JointIntentSlotConfig.model_type, JointIntentSlotConfig, exist_ok=True)
AutoModel.register(JointIntentSlotConfig, JointIntentSlotModel, exist_ok=True)
