"""Masked-LM training helpers: configs for models built from scratch, tokenizers trained with `tokenizers`, and a fixed-mask dev loss for before/after."""
import json
import math
from pathlib import Path

import torch
from transformers import AutoConfig

from common.losses import mlm_loss
from common.utterance import looks_like_local_path
from common.run import UsageError
from common.transfer import mask_tokens

SPECIALS = {"wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            "unigram": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}


def load_config(source):
    """A config from a JSON file, a model folder or a hub name."""
    path = Path(source)
    if path.suffix == ".json":
        if not path.is_file():
            raise UsageError(f"--model {source}: no such file")
        data = json.loads(path.read_text())
        if "model_type" not in data:
            raise UsageError(f"--model {source}: config has no model_type")
        return AutoConfig.for_model(**data)
    if looks_like_local_path(source) and not (path / "config.json").is_file():
        raise UsageError(f"--model {source}: not a model folder (no config.json)")
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise UsageError(f"--model {source}: cannot load a config ({str(err).splitlines()[0]})") from None


def train_tokenizer(texts, kind, vocab_size, lowercase=False):
    """A WordPiece (BERT style) or unigram SentencePiece (XLM-R style) tokenizer trained on texts."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast, XLMRobertaTokenizerFast

    specials = SPECIALS[kind]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                 sep_token="[SEP]", mask_token="[MASK]", do_lower_case=lowercase)
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                           unk_token="<unk>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")), trim_offsets=False)
    return XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def _mlm_head(model):
    """The MLM head module of BERT- (cls) and RoBERTa-family (lm_head) models, else None."""
    return getattr(model, "cls", None) or getattr(model, "lm_head", None)


def masked_lm_loss(model, input_ids, labels, attention_mask=None, reduction="mean"):
    """Cross-entropy on the masked tokens only. The vocabulary projection runs on those ~15% of
    positions instead of all of them: with a 30k vocabulary that is most of a small model's compute."""
    head = _mlm_head(model)
    if head is None:
        return mlm_loss(model(input_ids=input_ids, attention_mask=attention_mask).logits, labels, reduction)
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    chosen = labels != -100
    return mlm_loss(head(hidden[chosen]), labels[chosen], reduction)


def mlm_dev_loss(model, tokenizer, texts, max_length, probability=0.15, seed=0, batch_size=64):
    """Mean masked-LM cross-entropy over masked tokens of texts, with masks fixed by the seed, so
    the same tokens are predicted before and after training."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            masked, labels = mask_tokens(enc["input_ids"], tokenizer, probability, generator)
            labels[enc["attention_mask"] == 0] = -100
            n = int((labels != -100).sum())
            if n:
                total += masked_lm_loss(model, masked.to(device), labels.to(device), enc["attention_mask"].to(device),
                                        reduction="sum").item()
                count += n
    model.train()
    return total / count if count else math.nan
