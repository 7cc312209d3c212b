"""Loading teachers and tokenizers, building and initialising students."""
import copy
import re
from contextlib import contextmanager
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from common.utterance import looks_like_local_path
from common.run import UsageError


def _check_source(name_or_path, flag):
    if looks_like_local_path(name_or_path) and not Path(name_or_path).exists():
        raise UsageError(f"{flag} {name_or_path}: no such folder")
    if Path(name_or_path).is_dir() and not (Path(name_or_path) / "config.json").is_file():
        raise UsageError(f"{flag} {name_or_path}: not a model folder (no config.json)")


WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def load_errors():
    """What transformers raises for a folder it cannot read: a missing, truncated or foreign file."""
    from safetensors import SafetensorError
    return OSError, ValueError, RuntimeError, SafetensorError


def check_weights(name_or_path, flag="--model"):
    """A local model folder must hold weights, and a safetensors file a header that covers the file
    (a truncated copy fails here, before any work, not in a child process or mid-run)."""
    _check_source(str(name_or_path), flag)
    folder = Path(name_or_path)
    if not folder.is_dir():
        return
    if (folder / "model.onnx").is_file():
        raise UsageError(f"{flag} {name_or_path}: an exported ONNX folder; give the finetuned PyTorch folder it came from")
    if not any((folder / w).is_file() for w in WEIGHTS):
        raise UsageError(f"{flag} {name_or_path}: no weights beside its config.json (model.safetensors or "
                         "pytorch_model.bin): copy the whole model folder")
    if (folder / "model.safetensors").is_file():
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(folder / "model.safetensors", "pt") as f:
                f.keys()
        except (SafetensorError, OSError) as err:
            raise UsageError(f"{folder / 'model.safetensors'}: cannot read the weights ({str(err).splitlines()[0]}); "
                             "the file may be truncated: copy or train it again") from None


@contextmanager
def loading(name_or_path, flag="--model"):
    """Turn a model that does not load into one line naming the file: a config without weights, a
    truncated weights file, a config that is not JSON."""
    check_weights(name_or_path, flag)
    folder = Path(name_or_path)
    try:
        yield
    except load_errors() as err:
        weights = next((folder / w for w in WEIGHTS if (folder / w).is_file()), None) if folder.is_dir() else None
        where = f"{weights}: cannot load the weights" if weights else f"{flag} {name_or_path}: cannot load"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"{where} ({reason}); the file may be truncated or of another model") from None


def load_tokenizer(name_or_path, flag="--tokenizer"):
    _check_source(name_or_path, flag)
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise UsageError(f"{flag} {name_or_path}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None


def load_masked_lm(name_or_path, flag="--model"):
    """(model, has_mlm_head): the model with its MLM head, or with a new, randomly initialised one
    when the checkpoint has none (a sentence encoder such as all-MiniLM-L6-v2); the bare encoder
    when its architecture has no masked-LM class."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the "newly initialized" warning is expected; has_mlm_head says it
    try:
        with loading(name_or_path, flag):
            try:
                model, info = AutoModelForMaskedLM.from_pretrained(name_or_path, output_loading_info=True)
            except ValueError as err:
                if "Unrecognized configuration class" not in str(err):
                    raise
                return AutoModel.from_pretrained(name_or_path), False
    finally:
        transformers.logging.set_verbosity(verbosity)
    prefix = model.base_model_prefix + "."
    return model, not any(not key.startswith(prefix) for key in info["missing_keys"])


def load_teacher(name_or_path):
    """The frozen teacher with its MLM head when it has one, else the bare encoder: a random head
    would give logit KD random logits, and silently teach nothing. Returns (model, has_mlm_head)."""
    model, has_head = load_masked_lm(name_or_path, "--teacher")
    if not has_head:
        model = getattr(model, model.base_model_prefix, model)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, has_head


def load_config(name_or_path, flag="--model"):
    """A model's config through transformers (a hub name's; common.positions reads a folder's)."""
    import common.joint_model  # noqa: F401  registers the joint model's config with AutoConfig
    _check_source(name_or_path, flag)
    try:
        return AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise UsageError(f"{flag} {name_or_path}: cannot load its config ({str(err).splitlines()[0]})") from None


def default_heads(hidden, teacher_config):
    """The teacher's heads at the teacher's width, so that its layers can be copied whole; otherwise
    heads of 64 dimensions (BERT's), fewer where 64 does not divide the width."""
    if hidden == teacher_config.hidden_size:
        return teacher_config.num_attention_heads
    return next(h for h in range(max(1, hidden // 64), 0, -1) if hidden % h == 0)


def default_intermediate(hidden, teacher_config):
    """The teacher's feed-forward size at the teacher's width (its layers can be copied), else 4 x hidden."""
    return teacher_config.intermediate_size if hidden == teacher_config.hidden_size else 4 * hidden


def student_config(teacher_config, layers, hidden, heads, intermediate):
    """The teacher's config with the student's shape: same architecture, vocabulary, positions."""
    if hidden % heads:
        raise UsageError(f"--student-hidden {hidden} is not divisible by --student-heads {heads}")
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers, config.hidden_size = layers, hidden
    config.num_attention_heads, config.intermediate_size = heads, intermediate
    config.architectures = None
    return config


def teacher_layers_for_student(student_layers, teacher_layers):
    """Every k-th teacher layer, ending at the last: 6 -> 3 takes teacher layers 1, 3, 5 (0-based)."""
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def build_student(teacher, config, init):
    """A masked-LM student, initialised by `init`:

    random  the architecture's own random initialisation;
    teacher the teacher's embeddings and every k-th layer, copied whole (widths must match);
    select  the same, each tensor cut to the student's shape by keeping its leading rows and
            columns: weight selection (Xu et al. 2024, "Initializing Models with Larger Ones").
            The residual dimensions kept are the same everywhere, and the query/key/value rows
            kept are whole teacher heads when the teacher's head size divides the student's;
    auto    teacher when the widths match, else random.
    Returns (student, init used, teacher layers copied or None).
    """
    student = AutoModelForMaskedLM.from_config(config)
    t_conf = teacher.config
    same_width = (config.hidden_size, config.num_attention_heads, config.intermediate_size) == \
                 (t_conf.hidden_size, t_conf.num_attention_heads, t_conf.intermediate_size)
    if init == "auto":
        init = "teacher" if same_width and config.num_hidden_layers <= t_conf.num_hidden_layers else "random"
    if init == "random":
        return student, "random", None
    _check_can_copy(config, t_conf, init, same_width)
    chosen = teacher_layers_for_student(config.num_hidden_layers, t_conf.num_hidden_layers)
    teacher_state = teacher.state_dict()
    teacher_prefix = teacher.base_model_prefix + "." if hasattr(teacher, teacher.base_model_prefix) else ""
    student_prefix = student.base_model_prefix + "."
    new_state = {}
    for key, target in student.state_dict().items():
        source = key
        if key.startswith(student_prefix):
            source = teacher_prefix + key[len(student_prefix):]
            source = re.sub(r"\.layer\.(\d+)\.", lambda m: f".layer.{chosen[int(m.group(1))]}.", source)
        if source in teacher_state:  # the MLM head too, when the teacher has one
            new_state[key] = _leading_slice(teacher_state[source], target.shape)
    missing = student.load_state_dict(new_state, strict=False).missing_keys
    copied_encoder = not [k for k in missing if k.startswith(student_prefix) and "pooler" not in k]
    if not copied_encoder:
        raise UsageError(f"--student-init {init}: cannot map {type(teacher).__name__} weights onto the student")
    return student, init, chosen


def _check_can_copy(config, t_conf, init, same_width):
    if config.num_hidden_layers > t_conf.num_hidden_layers:
        raise UsageError(f"--student-init {init}: the student has more layers ({config.num_hidden_layers}) "
                         f"than the teacher ({t_conf.num_hidden_layers})")
    if init == "teacher" and not same_width:
        raise UsageError("--student-init teacher needs the teacher's hidden size, heads and intermediate "
                         f"size ({t_conf.hidden_size}/{t_conf.num_attention_heads}/{t_conf.intermediate_size}); "
                         "--student-init select cuts a wider teacher's weights to the student's")
    if init == "select" and (config.hidden_size > t_conf.hidden_size
                             or config.intermediate_size > t_conf.intermediate_size):
        raise UsageError(f"--student-init select: the student ({config.hidden_size}/{config.intermediate_size}) "
                         f"is wider than the teacher ({t_conf.hidden_size}/{t_conf.intermediate_size})")


def _leading_slice(tensor, shape):
    """The teacher tensor's leading block of the student tensor's shape (itself when equal)."""
    if tensor.shape == shape:
        return tensor
    if tensor.dim() != len(shape):
        raise UsageError(f"--student-init: a teacher tensor of shape {tuple(tensor.shape)} "
                         f"cannot become {tuple(shape)}")
    return tensor[tuple(slice(0, n) for n in shape)].clone()


def student_shape(model):
    c = model.config
    return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads,
            "intermediate": c.intermediate_size, "parameters": sum(p.numel() for p in model.parameters())}
