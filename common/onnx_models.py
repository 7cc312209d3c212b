"""ONNX export, graph optimisation, int8 quantisation, and ONNX Runtime models and predictor.

DC models go through optimum's ONNX export; the joint ICNER model, which optimum does not know,
through optimum's lower-level `export` with a custom OnnxConfig. Both get dynamic batch and
sequence axes, and carry their tokenizer and labels.json, so an exported folder is self-contained.
"""
import os
import platform
import shutil
from pathlib import Path

import numpy as np

from common.models import load_tokenizer, loading
from common.run import UsageError
from common.tasks import LABELS_FILE, load_labels, predict

ONNX_FILE = "model.onnx"
ISAS = ("avx2", "avx512", "avx512_vnni", "arm64")


def cpu_isa():
    """The best quantisation instruction set this CPU runs, or None."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return None
    for isa, flag in (("avx512_vnni", "avx512_vnni"), ("avx512", "avx512f"), ("avx2", "avx2")):
        if flag in flags:
            return isa
    return None


def check_isa(isa):
    """Resolve 'auto'; refuse a configuration this machine cannot run."""
    here = cpu_isa()
    if isa == "auto":
        if here is None:
            raise UsageError("--isa auto: this CPU has none of avx2, avx512, avx512_vnni, arm64")
        return here
    order = {"avx2": 0, "avx512": 1, "avx512_vnni": 2}
    runs = here == isa or (isa in order and here in order and order[here] >= order[isa])
    if not runs:
        raise UsageError(f"--isa {isa}: this machine's CPU supports {here or 'none of ' + ', '.join(ISAS)}")
    return isa


def _joint_onnx_config(config):
    from optimum.exporters.onnx.config import TextEncoderOnnxConfig
    from optimum.utils import NormalizedTextConfig

    class JointIntentSlotOnnxConfig(TextEncoderOnnxConfig):
        NORMALIZED_CONFIG_CLASS = NormalizedTextConfig

        @property
        def inputs(self):
            axes = {0: "batch_size", 1: "sequence_length"}
            return {"input_ids": dict(axes), "attention_mask": dict(axes)}

        @property
        def outputs(self):
            return {"intent_logits": {0: "batch_size"}, "slot_logits": {0: "batch_size", 1: "sequence_length"}}

    return JointIntentSlotOnnxConfig(config.encoder, task="feature-extraction")


def export_onnx(model_dir, out_dir):
    """fp32 ONNX of a finetuned DC or ICNER folder, with tokenizer, labels and config."""
    from optimum.exporters.onnx import export, onnx_export_from_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from common.joint_model import JointIntentSlotModel

    labels = load_labels(model_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"--model {model_dir}: no usable tokenizer ({str(err).splitlines()[0]})") from None
    if labels["task"] == "dc":
        with loading(model_dir):
            model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        try:
            onnx_export_from_model(model, out_dir, task="text-classification", do_validation=False)
        except (ValueError, KeyError) as err:
            raise UsageError(f"--model {model_dir}: optimum cannot export {type(model).__name__} "
                             f"({str(err).splitlines()[0]})") from None
    else:
        with loading(model_dir):
            model = JointIntentSlotModel.from_pretrained(model_dir).eval()
        try:
            export(model, _joint_onnx_config(model.config), out_dir / ONNX_FILE)
        except (ValueError, KeyError) as err:
            raise UsageError(f"--model {model_dir}: cannot export the {model.config.encoder.model_type} "
                             f"encoder ({str(err).splitlines()[0]})") from None
        model.config.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    shutil.copy(Path(model_dir) / LABELS_FILE, out_dir / LABELS_FILE)
    return model, tokenizer, labels


def optimize_onnx(folder, model):
    """Fuse attention/layer-norm/GELU in place with onnxruntime's transformer optimiser.

    The fused operators (Attention, SkipLayerNormalization, ...) are onnxruntime's own, which ONNX's
    shape inference does not know, so the int8 quantiser would find no type for their outputs; the
    symbolic shape inference of onnxruntime's tools, which knows them, writes those types in."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from onnxruntime.transformers.optimizer import optimize_model
    config = getattr(model.config, "encoder", model.config)
    path = str(Path(folder) / ONNX_FILE)
    optimized = optimize_model(path, model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1)
    optimized.save_model_to_file(path)
    onnx.save(SymbolicShapeInference.infer_shapes(onnx.load(path), auto_merge=True), path)


def quantize_onnx(src, dst, isa, per_channel):
    """Dynamic int8 quantisation (weights int8, activations quantised at run time)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    quantizer = ORTQuantizer.from_pretrained(src, file_name=ONNX_FILE)
    config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=per_channel)
    quantizer.quantize(save_dir=dst, quantization_config=config)
    os.replace(Path(dst) / "model_quantized.onnx", Path(dst) / ONNX_FILE)
    for item in Path(src).iterdir():  # tokenizer, labels, config travel with the model
        if item.name != ONNX_FILE and not (Path(dst) / item.name).exists():
            shutil.copy(item, Path(dst) / item.name)


class OnnxModel:
    """An exported folder: task, labels, tokenizer, an ONNX Runtime session and a logits function."""

    def __init__(self, folder, threads=None):
        import onnxruntime as ort

        folder = Path(folder)
        if not (folder / ONNX_FILE).is_file():
            raise UsageError(f"{folder}: no {ONNX_FILE} (not an exported model)")
        self.labels = load_labels(folder)
        self.task = self.labels["task"]
        self.tokenizer = load_tokenizer(str(folder), "--model")
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

    def predict(self, texts, max_length=64, batch_size=64):
        return predict(self.task, self.logits_fn, self.tokenizer, texts, self.labels, max_length, batch_size)


def open_model(folder, threads=None):
    """An exported folder as an OnnxModel; a finetuned PyTorch folder as a TorchModel, which
    answers the same calls (the baseline a deployment is measured against)."""
    if (Path(folder) / ONNX_FILE).is_file():
        return OnnxModel(folder, threads)
    from common.torch_model import TorchModel
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
        from common.models import check_max_length
        from common.pipeline import Pipeline, is_package, read_manifest
        if is_package(folder):
            check_max_length(str(Path(folder) / read_manifest(folder)["dc"]), max_length, "model", "max_length")
            self.model, self.task = Pipeline(folder, threads), "nlu"
        else:
            check_max_length(str(folder), max_length, "model", "max_length")
            self.model = open_model(folder, threads)
            self.task = self.model.task
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
        out = []
        for text, result in zip(texts, self.model.predict(texts, self.max_length, self.batch_size)):
            if self.task == "dc":
                out.append({"domain": result})
                continue
            domain, (intent, slots) = (result[0], result[1:]) if self.task == "nlu" else (None, result)
            out.append({**({"domain": domain} if self.task == "nlu" else {}), "intent": intent, "slots": [
                {"type": s.type, "text": text[s.start:s.end], "start": s.start, "end": s.end} for s in slots]})
        return out

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
                             f"window (max_length / --max-length); split it or raise the window")
