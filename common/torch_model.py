"""A finetuned PyTorch DC or ICNER folder behind the same interface as an exported ONNX one
(common.onnx_models.OnnxModel): task, labels, tokenizer, logits_fn and predict."""
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from common.engine import inference_device
from common.joint_model import JointIntentSlotModel
from common.models import load_tokenizer, loading
from common.tasks import load_labels, predict, torch_logits_fn


class TorchModel:
    def __init__(self, folder, threads=None):
        folder = Path(folder)
        self.labels = load_labels(folder)
        self.task = self.labels["task"]
        self.tokenizer = load_tokenizer(str(folder), "--model")
        if threads:
            torch.set_num_threads(threads)
        cls = AutoModelForSequenceClassification if self.task == "dc" else JointIntentSlotModel
        with loading(folder):
            self.model = cls.from_pretrained(folder).eval().to(inference_device())
        self.logits_fn = torch_logits_fn(self.model, inference_device())

    def predict(self, texts, max_length=64, batch_size=64):
        return predict(self.task, self.logits_fn, self.tokenizer, texts, self.labels, max_length, batch_size)
