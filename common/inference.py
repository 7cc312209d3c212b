"""The models that answer predictions: an exported ONNX folder (OnnxModel), a finetuned PyTorch
folder (TorchModel: the baseline a deployment is measured against), side by side with one
interface (task, labels, tokenizer, logits_fn, predict); and the Predictor a service calls, over
either or over a package (common.pipeline).
"""
from pathlib import Path

import numpy as np

from common.fast_tokenizer import load_inference_tokenizer
from common.onnx_models import ONNX_FILE
from common.positions import check_max_length
from common.run import UsageError
from common.tasks import load_labels, task_of, torch_logits_fn


class FinetunedModel:
    """The interface both share: task, labels, tokenizer and logits_fn are set by each."""

    def predict(self, texts, max_length=64, batch_size=64):
        return self.task.predict(self.logits_fn, self.tokenizer, texts, self.labels, max_length, batch_size)

    def predict_encoded(self, enc, rows, texts):
        """One batch tokenised already (common.tasks.encode_batch), e.g. by a model of the same tokenizer."""
        return self.task.predict_encoded(self.logits_fn, enc, rows, texts, self.labels)

    @property
    def task_name(self):
        return self.task.name

    def record(self, text, prediction):
        return self.task.record(text, prediction)


class TorchModel(FinetunedModel):
    """A finetuned PyTorch folder, on the inference device."""

    def __init__(self, folder, threads=None):
        import torch

        from common.engine import inference_device
        from common.models import load_tokenizer, loading
        folder = Path(folder)
        self.labels = load_labels(folder)
        self.task = task_of(self.labels)
        self.tokenizer = load_tokenizer(str(folder), "--model")
        if threads:
            torch.set_num_threads(threads)
        with loading(folder):
            self.model = self.task.model_class().from_pretrained(folder).eval().to(inference_device())
        self.logits_fn = torch_logits_fn(self.model, inference_device())


class OnnxModel(FinetunedModel):
    """An exported folder: task, labels, tokenizer, an ONNX Runtime session and a logits function."""

    def __init__(self, folder, threads=None):
        import onnxruntime as ort

        folder = Path(folder)
        if not (folder / ONNX_FILE).is_file():
            raise UsageError(f"{folder}: no {ONNX_FILE} (not an exported model)")
        self.labels = load_labels(folder)
        self.task = task_of(self.labels)
        self.tokenizer = load_inference_tokenizer(folder)  # no transformers: a service holds ONNX Runtime only
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle intra-op threads that spin take the cores a server's event loop (and a second worker)
        # needs; on 2 cores, 1 worker x 2 threads served 390 req/s with spinning and 614 without, in two
        # consecutive load tests at concurrency 32 (docs/export.md, "Serve").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's InvalidProtobuf, Fail, ...: pybind classes with no common base
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise UsageError(f"{folder / ONNX_FILE}: not a model ONNX Runtime can load ({reason}); "
                             "the file may be truncated: export it again") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def logits_fn(self, input_ids, attention_mask):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return dict(zip(self.output_names, self.session.run(None, feed)))


def open_model(folder, threads=None):
    """An exported folder as an OnnxModel; a finetuned PyTorch folder as a TorchModel, which
    answers the same calls (the baseline a deployment is measured against)."""
    if (Path(folder) / ONNX_FILE).is_file():
        return OnnxModel(folder, threads)
    return TorchModel(folder, threads)


class Predictor:
    """What a service calls: raw utterances in, domains or intents with character-offset slots out.
    An exported DC or ICNER folder, a finetuned PyTorch one, or a package (common.pipeline):

        Predictor("out/onnx/int8")(["wake me up at seven am"])
        -> [{"intent": "alarm_set", "slots": [{"type": "time", "text": "seven am", "start": 14, "end": 22}]}]
        Predictor("out/package")("wake me up at seven am")
        -> {"domain": "alarm", "intent": "alarm_set", "slots": [...]}
    """

    def __init__(self, folder, threads=None, max_length=64, batch_size=64):
        from common.pipeline import Pipeline, is_package, read_manifest
        if is_package(folder):
            check_max_length(str(Path(folder) / read_manifest(folder)["dc"]), max_length, "model", "max_length")
            self.model = Pipeline(folder, threads)
        else:
            check_max_length(str(folder), max_length, "model", "max_length")
            self.model = open_model(folder, threads)
        self.task = self.model.task_name  # dc, icner or nlu (a package): what /health says
        self.max_length, self.batch_size = max_length, batch_size  # texts per model call, sorted by length

    def __call__(self, texts):
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        self.check_lengths(texts)
        out = self.records(texts)
        return out[0] if single else out

    def records(self, texts):
        """The prediction record of each text, whose length is already checked (serve.py checks
        each request's before batching them)."""
        return [self.model.record(text, result)
                for text, result in zip(texts, self.model.predict(texts, self.max_length, self.batch_size))]

    def too_long(self, texts, tokenizer=None):
        """(index, tokens) of the first text longer than the model's window, or None. A thread other
        than the one predicting passes its own copy of the tokenizer: a fast tokenizer is not
        thread-safe ("Already borrowed")."""
        lengths = [len(ids) for ids in (tokenizer or self.model.tokenizer)(texts)["input_ids"]]
        return next(((i, n) for i, n in enumerate(lengths) if n > self.max_length), None)

    def check_lengths(self, texts):
        """Refuse, never silently cut, an utterance longer than the model's window: its slots
        past the cut would be lost without a word."""
        first = self.too_long(texts)
        if first:
            raise UsageError(f"utterance {first[0] + 1} has {first[1]} tokens, more than the {self.max_length}-token "
                             f"window (max_length / --max-seq-length); split it or raise the window")
