"""The transfer set: tokenized sources, packed into full sequences, mixed at a target ratio.

Packing: documents (or utterances) of one source are concatenated, separated by the tokenizer's
separator, and cut into sequences of exactly max_seq_length tokens ([CLS] ... [SEP]). Long
documents are thereby cut into several sequences and short utterances share one, so no compute
goes to padding. A sequence never mixes sources, so the share of target tokens is exact.

Mixing: before each sequence the stream picks the source whose share of tokens so far is furthest
below its target share (deficit round-robin). That is the deterministic counterpart of
`datasets.interleave_datasets(probabilities=[1-R, R])`: the same expected mix, but the measured
share tracks R to within one sequence instead of drifting by sampling noise, which matters
when runs at different R are compared at equal budget.

Every source repeats, reshuffled each epoch with a seed, so a budget in steps or tokens is
met whatever the corpus size. The whole stream state is a small dict, saved in checkpoints.
"""
from functools import cached_property

import numpy as np
import torch

from common.run import UsageError

GENERIC, TARGET = "generic", "target"


class TokenSource:
    """Token-id documents of one corpus in a seeded order that changes every epoch."""

    def __init__(self, name, tokenizer, seed, documents=None, open_stream=None, batch_size=512):
        self.name, self.tokenizer, self.seed, self.batch_size = name, tokenizer, seed, batch_size
        self.open_stream = open_stream
        self.token_ids = None
        if documents is not None:
            self.token_ids = self._tokenize(documents)
            self.token_ids = [ids for ids in self.token_ids if ids]
            if not self.token_ids:
                raise UsageError(f"{name} data holds no text: the transfer set would be empty")

    def _tokenize(self, documents):
        out = []
        for i in range(0, len(documents), 4096):
            out.extend(self.tokenizer(documents[i:i + 4096], add_special_tokens=False, verbose=False)["input_ids"])
        return out

    @property
    def num_tokens(self):
        return None if self.token_ids is None else sum(map(len, self.token_ids))

    @cached_property  # the documents never change: one pass, for the check and for run.json
    def unknown_share(self):
        """Share of the pieces the tokenizer could not read ([UNK]); None for a streamed corpus."""
        unknown = self.tokenizer.unk_token_id
        if self.token_ids is None or unknown is None:
            return None
        return sum(ids.count(unknown) for ids in self.token_ids) / self.num_tokens

    def documents(self, epoch, start):
        """Token-id lists of one epoch, from document `start` on."""
        if self.token_ids is not None:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.token_ids))
            for index in order[start:]:
                yield self.token_ids[index]
            return
        texts = self.open_stream(epoch)
        skipped = 0
        batch = []
        for text in texts:
            if skipped < start:  # resume: skip what earlier passes of this epoch consumed
                skipped += 1
                continue
            batch.append(text)
            if len(batch) == self.batch_size:
                yield from self._tokenize(batch)
                batch = []
        if batch:
            yield from self._tokenize(batch)


class PackedSequences:
    """Cuts one TokenSource into sequences of exactly seq_length tokens, across epochs."""

    def __init__(self, source, seq_length):
        self.source = source
        tok = source.tokenizer
        self.cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        self.sep_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        if self.cls_id is None or self.sep_id is None:
            raise UsageError("the tokenizer has no [CLS]/[SEP] (or <s>/</s>) tokens to build sequences with")
        self.body_length = seq_length - 2
        if self.body_length < 1:
            raise UsageError(f"--max-seq-length {seq_length} is too short")
        self.state = {"epoch": 0, "doc": 0, "buffer": []}
        self._docs = None

    def load_state(self, state):
        self.state = {"epoch": state["epoch"], "doc": state["doc"], "buffer": list(state["buffer"])}
        self._docs = None

    def next_sequence(self):
        state = self.state
        buffer = state["buffer"]
        empty_epochs = 0
        while len(buffer) < self.body_length:
            if self._docs is None:
                self._docs = self.source.documents(state["epoch"], state["doc"])
            ids = next(self._docs, None)
            if ids is None:  # epoch done: reshuffle and go on
                if state["doc"] == 0:
                    empty_epochs += 1
                    if empty_epochs > 1:
                        raise UsageError(f"{self.source.name} data holds no text: the transfer set would be empty")
                state["epoch"] += 1
                state["doc"] = 0
                self._docs = None
                continue
            state["doc"] += 1
            if buffer:
                buffer.append(self.sep_id)
            buffer.extend(ids)
        body, state["buffer"] = buffer[:self.body_length], buffer[self.body_length:]
        return [self.cls_id] + body + [self.sep_id]


class TransferStream:
    """Full sequences from the generic and target sources at a target-token share `ratio`."""

    def __init__(self, generic, target, ratio):
        if not 0.0 <= ratio <= 1.0:
            raise UsageError(f"--target-ratio must be in [0, 1], got {ratio}")
        if ratio < 1 and generic is None:
            raise UsageError(f"--target-ratio {ratio} needs generic data: pass --generic-data (or use --target-ratio 1)")
        if ratio > 0 and target is None:
            raise UsageError(f"--target-ratio {ratio} needs target data: pass --target-data (or use --target-ratio 0)")
        self.sources = {GENERIC: generic, TARGET: target}
        self.ratio = ratio
        self.tokens = {GENERIC: 0, TARGET: 0}
        self.sequences = 0

    def _pick(self):
        if self.ratio == 0.0:
            return GENERIC
        if self.ratio == 1.0:
            return TARGET
        total = self.tokens[GENERIC] + self.tokens[TARGET]
        return TARGET if self.tokens[TARGET] < self.ratio * total or total == 0 and self.ratio >= 0.5 else GENERIC

    def next_batch(self, size):
        """`size` sequences as a LongTensor, with the source of each row."""
        rows, origins = [], []
        for _ in range(size):
            name = self._pick()
            ids = self.sources[name].next_sequence()
            self.tokens[name] += len(ids)
            self.sequences += 1
            rows.append(ids)
            origins.append(name)
        return torch.tensor(rows, dtype=torch.long), origins

    @property
    def target_share(self):
        total = self.tokens[GENERIC] + self.tokens[TARGET]
        return self.tokens[TARGET] / total if total else None

    def state_dict(self):
        return {"tokens": dict(self.tokens), "sequences": self.sequences,
                "sources": {k: dict(v.state, buffer=list(v.state["buffer"])) for k, v in self.sources.items() if v}}

    def load_state_dict(self, state):
        self.tokens = dict(state["tokens"])
        self.sequences = state["sequences"]
        for name, source_state in state["sources"].items():
            self.sources[name].load_state(source_state)


def masking_generator(seed, step, micro=0, rank=0):
    """The random draws that mask micro-batch `micro` of optimizer step `step` in process `rank`:
    they depend on those numbers only, as dropout's do, so a resumed run masks as an unbroken one."""
    return torch.Generator().manual_seed(seed * 7_919 + step * 131 + micro * 17 + rank)


def mask_tokens(input_ids, tokenizer, probability, generator):
    """BERT masking: pick `probability` of the non-special tokens; 80% [MASK], 10% random, 10% kept.

    Returns (masked input ids, labels with -100 where nothing is to be predicted).
    """
    labels = input_ids.clone()
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for token_id in tokenizer.all_special_ids:
        special |= input_ids == token_id
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels[~chosen] = -100
    masked = input_ids.clone()
    replace = chosen & (torch.rand(input_ids.shape, generator=generator) < 0.8)
    masked[replace] = tokenizer.mask_token_id
    randomize = chosen & ~replace & (torch.rand(input_ids.shape, generator=generator) < 0.5)
    masked[randomize] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[randomize]
    return masked, labels
