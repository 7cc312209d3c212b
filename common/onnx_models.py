"""ONNX export, graph optimisation and int8 quantisation (the models that run the exports are
common.inference's).

DC models go through optimum's ONNX export; the joint ICNER model, which optimum does not know,
through optimum's lower-level `export` with a custom OnnxConfig. Both get dynamic batch and
sequence axes, and carry their tokenizer and labels.json, so an exported folder is self-contained.
"""
import os
import platform
import shutil
from pathlib import Path

from common.run import UsageError
from common.tasks import LABELS_FILE, load_labels, task_of

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


def joint_onnx_config(config):
    """optimum's export config of the joint ICNER model, which optimum does not know."""
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
    from transformers import AutoTokenizer

    from common.models import loading
    labels = load_labels(model_dir)
    task = task_of(labels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"--model {model_dir}: no usable tokenizer ({str(err).splitlines()[0]})") from None
    with loading(model_dir):
        model = task.model_class().from_pretrained(model_dir).eval()
    try:
        task.export_onnx(model, tokenizer, out_dir)
    except (ValueError, KeyError) as err:
        encoder = getattr(model.config, "encoder", model.config).model_type
        raise UsageError(f"--model {model_dir}: optimum cannot export {type(model).__name__} on a {encoder} encoder "
                         f"({str(err).splitlines()[0]})") from None
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
