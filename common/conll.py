"""CoNLL files in the column layouts SLU corpora ship: which column is the token, the tag, the intent.

    token tag                     play  O
    token tag intent              play  O  music_play
    index token tag               1  play  O
    index token intent tag        1  play  music_play  O        (MaChAmp's layout, xSID's files)

An index column counts 1..n within each utterance. The layout is detected per utterance and must
be the same in the whole file; --conll-columns (token=2,intent=3,tag=4) forces one. Comment lines
`# intent = X`, `# domain = X` and `# text = X` are read: with `# text`, the tokens are found in
order in the original text and slots are character offsets into it, as in MASSIVE; without it the
tokens are joined by one space.
"""
import re

from common.run import UsageError

TAG = re.compile(r"^(O|[BIES]-\S+)$")
COMMENT = re.compile(r"^#\s*(intent|domain|text)\s*=\s*(.*?)\s*$")
ROLES = ("index", "token", "intent", "tag")
LAYOUTS = {2: [{"token": 0, "tag": 1}],
           3: [{"index": 0, "token": 1, "tag": 2}, {"token": 0, "tag": 1, "intent": 2}],
           4: [{"index": 0, "token": 1, "intent": 2, "tag": 3}]}


def layout_name(layout):
    return " ".join(sorted(layout, key=layout.get))


def parse_columns(spec):
    """'token=2,intent=3,tag=4' (1-based) -> {"token": 1, "intent": 2, "tag": 3}; an argparse type."""
    import argparse
    layout = {}
    for part in spec.split(","):
        role, _, number = part.partition("=")
        if role.strip() not in ROLES or not number.strip().isdigit() or int(number) < 1:
            raise argparse.ArgumentTypeError(f"{spec!r}: give role=column pairs, e.g. token=2,intent=3,tag=4 "
                                             f"(roles: {', '.join(ROLES)}; columns from 1)")
        layout[role.strip()] = int(number) - 1
    if not {"token", "tag"} <= set(layout) or len(set(layout.values())) < len(layout):
        raise argparse.ArgumentTypeError(f"{spec!r}: needs a token and a tag column, each role in its own column")
    return layout


def counts_from_one(values):
    return all(v.isdigit() for v in values) and [int(v) for v in values] == list(range(1, len(values) + 1))


def detect(rows, where):
    """The layout of one utterance's rows (lists of fields), or an error naming its first line."""
    widths = {len(fields) for fields in rows}
    if len(widths) > 1 or next(iter(widths)) not in LAYOUTS:
        raise UsageError(f"{where}: {', '.join(map(str, sorted(widths)))} columns; a CoNLL utterance has 2 to 4 "
                         "on every line (token tag; token tag intent; index token tag; index token intent tag)")
    fits = [layout for layout in LAYOUTS[widths.pop()]
            if all(TAG.match(fields[layout["tag"]]) for fields in rows)
            and ("index" not in layout or counts_from_one([fields[layout["index"]] for fields in rows]))]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        return LAYOUTS[len(rows[0])][0]  # the tags are checked, and named, when the utterance is read
    raise UsageError(f"{where}: the columns read as {' or as '.join(layout_name(f) for f in fits)}; "
                     "say which with --conll-columns (e.g. token=2,tag=3)")


def check_index(rows, layout, where):
    if "index" in layout and not counts_from_one([fields[layout["index"]] for fields in rows]):
        raise UsageError(f"{where}: the index column does not count 1..{len(rows)} "
                         f"({' '.join(fields[layout['index']] for fields in rows[:6])}{' ...' if len(rows) > 6 else ''})")


def token_offsets(tokens, text, where):
    """Where each token starts in the original text, found in order, or an error."""
    starts, position = [], 0
    for token in tokens:
        found = text.find(token, position)
        if found < 0:
            raise UsageError(f"{where}: '# text = {text}' does not hold the token {token!r} where it should "
                             "(the tokens in order); fix the text or drop the line")
        starts.append(found)
        position = found + len(token)
    return starts


def utterance_rows(path, lines):
    """[(first line number, {intent, domain, text} comments, [(line number, fields)])] of a file's lines."""
    blocks, rows, notes = [], [], {}
    for number, line in lines:
        if not line.strip():
            if rows:
                blocks.append((rows[0][0], notes, rows))
            rows, notes = [], {}
        elif line.startswith("#"):
            match = COMMENT.match(line)
            if match and match.group(2):
                notes[match.group(1)] = match.group(2)
        else:
            fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
            if len(fields) < 2 or not fields[0]:
                raise UsageError(f"{path}:{number}: expected a token and its tag (token<TAB>tag), got {line!r}")
            rows.append((number, fields))
    if rows:
        blocks.append((rows[0][0], notes, rows))
    return blocks


def read_blocks(path, lines, forced=None):
    """Each utterance as (where, tokens, tags, intent, domain, text or None) and the file's layout info."""
    out, layouts = [], {}
    for first, notes, numbered in utterance_rows(path, lines):
        where, rows = f"{path}:{first}", [fields for _, fields in numbered]
        layout = forced or detect(rows, where)
        if forced and any(len(fields) <= max(forced.values()) for fields in rows):
            raise UsageError(f"{where}: fewer columns than --conll-columns names ({layout_name(forced)})")
        check_index(rows, layout, where)
        layouts.setdefault(layout_name(layout), first)
        if len(layouts) > 1:
            (a, at), (b, bt) = list(layouts.items())[:2]
            raise UsageError(f"{path}: utterances in different layouts (line {at}: {a}; line {bt}: {b}); keep one per file")
        intents = {fields[layout["intent"]] for fields in rows} if "intent" in layout else set()
        if len(intents) > 1:
            raise UsageError(f"{where}: the intent column differs within one utterance ({', '.join(sorted(intents))})")
        if intents and notes.get("intent") and notes["intent"] not in intents:
            raise UsageError(f"{where}: the intent column says {next(iter(intents))} but '# intent = "
                             f"{notes['intent']}'; they must agree")
        intent = notes.get("intent") or next(iter(intents), None)
        if not intent:
            raise UsageError(f"{where}: utterance without an intent (a '# intent = X' line or an intent column)")
        out.append((where, [f[layout["token"]] for f in rows], [f[layout["tag"]] for f in rows], intent,
                    notes.get("domain"), notes.get("text")))
    texts = {text is not None for *_, text in out}
    spacing = "from '# text'" if texts == {True} else "tokens joined by one space" if texts == {False} else \
        "from '# text' where given, else tokens joined by one space"
    return out, {"conll_layout": next(iter(layouts), None), "text_spacing": spacing}
