"""An exported folder's tokenizer without transformers: its tokenizer.json, read by the tokenizers
library, answering the calls a predictor makes as transformers' fast tokenizer answers them (the
same Rust tokenizer does the work in both). A service of ONNX models then starts with, and holds,
ONNX Runtime and this, not torch and transformers (docs/export.md, "Predictor", has the figures).
"""
import json
from pathlib import Path

import numpy as np

from common.jsonl import read_json
from common.run import UsageError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILES = ("special_tokens_map.json", "tokenizer_config.json")  # the later one wins, as in transformers


def _content(token):
    """A special token as tokenizer_config.json writes it: a string or an AddedToken's dict."""
    return token.get("content") if isinstance(token, dict) else token


class FastTokenizer:
    """The subset of PreTrainedTokenizerFast's __call__ that inference uses: a list of texts,
    optional truncation to max_length, padding to the longest, offsets, numpy arrays."""

    def __init__(self, folder):
        from tokenizers import Tokenizer
        folder = Path(folder)
        config = {}
        for name in CONFIG_FILES:
            path = folder / name
            if path.is_file():
                config.update(read_json(path))
        try:
            self.backend_tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        except Exception as err:  # the Rust side raises a bare Exception
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise UsageError(f"{folder / TOKENIZER_FILE}: cannot load a tokenizer ({reason})") from None
        self.pad_token = _content(config.get("pad_token"))
        self.pad_token_id = self.backend_tokenizer.token_to_id(self.pad_token) if self.pad_token else None
        self.padding_side = config.get("padding_side", "right")
        self.truncation_side = config.get("truncation_side", "right")

    def __call__(self, texts, truncation=False, max_length=None, padding=False, return_offsets_mapping=False,
                 return_tensors=None):
        backend = self.backend_tokenizer
        # set on every call, as transformers does: the state lives in the shared Rust object
        if truncation:
            backend.enable_truncation(max_length, direction=self.truncation_side)
        else:
            backend.no_truncation()
        if padding:
            if self.pad_token_id is None:
                raise ValueError("this tokenizer has no pad token: it cannot pad a batch")
            backend.enable_padding(direction=self.padding_side, pad_id=self.pad_token_id, pad_token=self.pad_token)
        else:
            backend.no_padding()
        encodings = backend.encode_batch(list(texts))
        out = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        if return_tensors == "np":
            out = {k: np.array(v, dtype=np.int64) for k, v in out.items()}
        elif return_tensors is not None:
            raise ValueError(f"return_tensors={return_tensors!r}: this tokenizer gives lists or numpy arrays")
        return out


def load_inference_tokenizer(folder, flag="--model"):
    """A folder's tokenizer for predicting: its tokenizer.json without transformers where it has
    one (every fast tokenizer saves one), otherwise transformers' AutoTokenizer."""
    if (Path(folder) / TOKENIZER_FILE).is_file():
        return FastTokenizer(folder)
    from common.models import load_tokenizer
    return load_tokenizer(str(folder), flag)


def tokenizer_definition(tokenizer):
    """What splits and numbers a text (vocabulary, normalizer, pre-tokenizer, post-processor,
    added tokens), without the truncation and padding a call sets: equal definitions tokenise
    every text alike, whichever library loaded them."""
    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    return {k: v for k, v in definition.items() if k not in ("truncation", "padding")}
