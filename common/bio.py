"""BIO slot labels from character spans, and back, through the tokenizer's offset mapping.

Every token is labelled from the character spans: B-type on the token that holds a slot's first
character, I-type on the slot's later tokens, O elsewhere; continuation sub-words inside a slot
are labelled I, none is ignored. Word boundaries are never used, so languages written without
spaces (ja-JP) are labelled the same way as English. Special tokens get -100 (no loss).

Back from tags, a span's edges snap outwards to grapheme-cluster boundaries of the text: an
uncased tokenizer strips accents and combining marks, so its offsets can stop before a vowel
sign (Hindi), a harakat (Arabic) or a combining accent (NFD Latin) that belongs to the span.
"""
import bisect

import regex

from common.utterance import Slot

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
    out, bounds = [], None
    for slot_type, start, end in spans:
        bounds = bounds or cluster_bounds(text)
        start = bounds[bisect.bisect_right(bounds, start) - 1]  # the cluster that holds start
        end = bounds[bisect.bisect_left(bounds, end)]  # the end of the cluster that holds end - 1
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            out.append(Slot(slot_type, start, end))
    return out


def cluster_bounds(text):
    """Character offsets where an extended grapheme cluster (Unicode UAX #29) starts, and len(text)."""
    return [m.start() for m in regex.finditer(r"\X", text)] + [len(text)]


def slot_ceiling(tokenizer, utterances, max_length):
    """{locale: [gold slots, slots the tokenizer can represent exactly]}: each gold span goes
    through tags and back (gold spans -> token tags -> spans), as a perfect model's would. A span
    that does not come back (it starts or ends inside a token, e.g. inside one [UNK] covering a
    run of kana, or lies past the window) is an error no model on this tokenizer can avoid."""
    counts = {}
    enc = tokenizer([u.text for u in utterances], truncation=True, max_length=max_length, return_offsets_mapping=True)
    for offsets, u in zip(enc["offset_mapping"], utterances):
        recovered = set(spans_from_tags(offsets, token_tags(offsets, u.slots), u.text))
        gold, ok = counts.setdefault(u.locale, [0, 0])
        counts[u.locale] = [gold + len(u.slots), ok + sum(slot in recovered for slot in u.slots)]
    return counts


def ceiling_report(counts):
    """Per locale and overall: gold slots, representable slots and their share."""
    def row(gold, ok):
        return {"gold_slots": gold, "representable": ok, "share": round(ok / gold, 5) if gold else None}
    report = {locale: row(*c) for locale, c in sorted(counts.items())}
    report["all"] = row(sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
    return report
