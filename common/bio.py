"""BIO slot labels from character spans, and back, through the tokenizer's offset mapping.

Every token is labelled from the character spans: B-type on the token that holds a slot's first
character, I-type on the slot's later tokens, O elsewhere; continuation sub-words inside a slot
are labelled I, none is ignored. Word boundaries are never used, so languages written without
spaces (ja-JP) are labelled the same way as English. Special tokens get -100 (no loss).
"""
from common.massive import Slot

OUTSIDE = "O"


def slot_label_names(slot_types):
    """O, then B-/I- of every slot type, in a stable order."""
    names = [OUTSIDE]
    for slot_type in sorted(slot_types):
        names += [f"B-{slot_type}", f"I-{slot_type}"]
    return names


def token_tags(offsets, slots):
    """BIO tag (or None for special tokens) of each token, from its (start, end) character offsets."""
    tags = []
    for start, end in offsets:
        if start == end:  # special or empty token
            tags.append(None)
            continue
        tag = OUTSIDE
        for slot in slots:
            if start < slot.end and end > slot.start:  # the token overlaps the slot
                tag = ("B-" if start <= slot.start else "I-") + slot.type
                break
        tags.append(tag)
    return tags


def spans_from_tags(offsets, tags, text):
    """Character-offset slots from per-token tags; an I- without a B- of its type opens a slot too.

    Whitespace at the edges of a span is trimmed, so spans line up with annot_utt's slots.
    """
    spans, current = [], None
    for (start, end), tag in zip(offsets, tags):
        if tag is None or start == end:
            continue
        if tag == OUTSIDE:
            current = None
            continue
        prefix, slot_type = tag[:2], tag[2:]
        if current is not None and prefix == "I-" and current[0] == slot_type:
            current[2] = end
        else:
            current = [slot_type, start, end]
            spans.append(current)
    out = []
    for slot_type, start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            out.append(Slot(slot_type, start, end))
    return out
