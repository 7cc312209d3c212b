"""A model's usable sequence length, from its config: a local folder's config.json is read as
JSON, so that checking a predictor's window imports no transformers."""
from pathlib import Path

from common.jsonl import read_json
from common.run import UsageError

OFFSET_AFTER_PADDING = ("roberta", "xlm-roberta", "camembert")  # position ids start after the padding index


def _field(config, name, default=None):
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def max_positions(config):
    """Usable sequence length of a transformers config or of config.json as a dict; the joint
    ICNER model's config wraps its encoder's."""
    config = _field(config, "encoder") or config
    offset = 2 if _field(config, "model_type") in OFFSET_AFTER_PADDING else 0
    return _field(config, "max_position_embeddings") - offset


def read_config(name_or_path, flag="--model"):
    """A local folder's config.json as a dict; a hub name's config through transformers."""
    path = Path(name_or_path) / "config.json"
    if not path.is_file():
        from common.models import load_config
        return load_config(name_or_path, flag)
    config = read_json(path)
    if _field(_field(config, "encoder") or config, "max_position_embeddings") is None:
        raise UsageError(f"{path}: no max_position_embeddings (not a transformers encoder's config)")
    return config


def check_max_length(name_or_path, length, flag="--model", length_flag="--max-seq-length"):
    """Refuse a sequence length beyond the model's positions before any work starts."""
    limit = max_positions(read_config(name_or_path, flag))
    if length > limit:
        raise UsageError(f"{length_flag} {length} exceeds the {limit} positions of {name_or_path}")
