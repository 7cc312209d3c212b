"""DC and ICNER metrics, SemER, and bootstrap confidence intervals.

Slots are compared as character spans (type, start, end) of the utterance, so scores do not
depend on the model's tokenizer and students with different vocabularies compare fairly. Slot
precision/recall/F1 come from seqeval over character-level BIO sequences, which counts a slot
right exactly when its type and span match.
"""
from collections import Counter, defaultdict

import numpy as np
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score


def char_bio(text, slots):
    tags = ["O"] * len(text)
    for slot in sorted(slots, key=lambda s: s.start):
        tags[slot.start] = f"B-{slot.type}"
        for i in range(slot.start + 1, slot.end):
            tags[i] = f"I-{slot.type}"
    return tags or ["O"]


def semantic_errors(gold_intent, gold_slots, pred_intent, pred_slots):
    """(errors, reference size) of one utterance for SemER.

    The intent counts as one more slot. A predicted slot with the reference's type and span is
    correct. Of the rest, a predicted and a reference slot of the same type (wrong words), or with
    the same span (wrong type), pair up as one substitution; a reference slot left over is a
    deletion, a predicted one an insertion. errors = S + D + I, reference = slots + 1.
    """
    gold = [(s.type, s.start, s.end) for s in gold_slots]
    pred = [(s.type, s.start, s.end) for s in pred_slots]
    remaining_pred = list(pred)
    unmatched_gold = []
    for g in gold:
        if g in remaining_pred:
            remaining_pred.remove(g)
        else:
            unmatched_gold.append(g)
    substitutions = 0
    for same in (lambda g, p: g[0] == p[0], lambda g, p: g[1:] == p[1:]):
        for g in list(unmatched_gold):
            partner = next((p for p in remaining_pred if same(g, p)), None)
            if partner is not None:
                unmatched_gold.remove(g)
                remaining_pred.remove(partner)
                substitutions += 1
    substitutions += int(gold_intent != pred_intent)
    return substitutions + len(unmatched_gold) + len(remaining_pred), len(gold) + 1


def bootstrap_ci(per_item, statistic, samples=1000, seed=0, level=0.95):
    """Percentile bootstrap over items. per_item: dict of arrays [n]; statistic(dict of sums)->float."""
    n = len(next(iter(per_item.values())))
    if n == 0:
        return [None, None]
    rng = np.random.default_rng(seed)
    counts = _resample_counts(rng, n, samples)
    sums = {k: counts @ np.asarray(v, dtype=np.float64) for k, v in per_item.items()}
    values = np.array([statistic({k: v[b] for k, v in sums.items()}) for b in range(samples)])
    alpha = (1 - level) / 2
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]


def paired_bootstrap_ci(better, worse, statistic, samples=2000, seed=0, level=0.95):
    """Mean paired difference statistic(better) - statistic(worse) over seeds, and its percentile
    bootstrap interval resampling seeds and test utterances together.

    better, worse: one dict of per-utterance arrays [n] per seed, in the same seed order, over the
    same utterances. statistic(sums, n) -> value, vectorised over rows of sums. Each replicate
    draws n utterances with replacement (the same ones for every seed and both conditions: the
    pairing) and k seeds with replacement, and averages the chosen seeds' differences; so the
    interval holds both sources of variance, a new student seed and a new test set.
    """
    k, n = len(better), len(next(iter(better[0].values())))
    if k == 0 or n == 0 or k != len(worse):
        return None, None, None
    point = float(_differences(better, worse, statistic, np.ones((1, n)), n).mean())
    rng = np.random.default_rng(seed)
    diffs = _differences(better, worse, statistic, _resample_counts(rng, n, samples), n)  # [B, k]
    return (point, *_seed_bootstrap_interval(rng, diffs, level))


def contrast_bootstrap_ci(pair_a, pair_b, statistic, samples=2000, seed=0, level=0.95):
    """Whether a paired difference is larger on one test set than on another (two locales): the
    mean over seeds of [statistic(better) - statistic(worse)] on set a minus the same on set b,
    and its percentile bootstrap interval. pair_a, pair_b: (better, worse) as in
    paired_bootstrap_ci, over the same seeds. Each replicate draws each set's utterances with
    replacement (independently: the sets are disjoint) and the seeds once for both sets.
    """
    (better_a, worse_a), (better_b, worse_b) = pair_a, pair_b
    k, sizes = len(better_a), [len(next(iter(b[0].values()))) if b else 0 for b in (better_a, better_b)]
    if k == 0 or 0 in sizes or not len(worse_a) == len(better_b) == len(worse_b) == k:
        return None, None, None
    (n_a, n_b) = sizes
    point = float((_differences(better_a, worse_a, statistic, np.ones((1, n_a)), n_a)
                   - _differences(better_b, worse_b, statistic, np.ones((1, n_b)), n_b)).mean())
    rng = np.random.default_rng(seed)
    contrasts = (_differences(better_a, worse_a, statistic, _resample_counts(rng, n_a, samples), n_a)
                 - _differences(better_b, worse_b, statistic, _resample_counts(rng, n_b, samples), n_b))  # [B, k]
    return (point, *_seed_bootstrap_interval(rng, contrasts, level))


def _differences(better, worse, statistic, counts, n):
    """[replicates, seeds]: each seed's difference under each row of resample counts."""
    return np.stack([_difference(b, w, statistic, counts, n) for b, w in zip(better, worse)], axis=1)


def _seed_bootstrap_interval(rng, values, level):
    """Percentile interval of the mean over k seeds drawn with replacement, one draw per replicate
    (row) of values [replicates, k]."""
    samples, k = values.shape
    chosen = rng.integers(0, k, (samples, k))
    means = np.take_along_axis(values, chosen, axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _resample_counts(rng, n, samples):
    """[samples, n]: how often each of n items is drawn in each bootstrap replicate of n draws."""
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(samples)])


def _difference(better, worse, statistic, counts, n):
    sums = [{key: counts @ np.asarray(v, dtype=np.float64) for key, v in items.items()} for items in (better, worse)]
    return statistic(sums[0], n) - statistic(sums[1], n)


def _ratio(a, b):
    return a / b if b else 0.0


def dc_metrics(gold, pred, groups=None, bootstrap=1000):
    """Accuracy, macro-F1 (over gold domains) and per-domain accuracy; CIs for the first two."""
    gold, pred = list(gold), list(pred)
    labels = sorted(set(gold))
    correct = np.array([g == p for g, p in zip(gold, pred)], dtype=float)
    per_item = {"correct": correct}
    for label in labels:
        per_item[f"tp:{label}"] = np.array([g == label and p == label for g, p in zip(gold, pred)], float)
        per_item[f"gold:{label}"] = np.array([g == label for g in gold], float)
        per_item[f"pred:{label}"] = np.array([p == label for p in pred], float)

    def accuracy(s):
        return _ratio(s["correct"], len(gold))

    def macro_f1(s):
        f1s = [_ratio(2 * s[f"tp:{c}"], s[f"gold:{c}"] + s[f"pred:{c}"]) for c in labels if s[f"gold:{c}"] > 0]
        return float(np.mean(f1s)) if f1s else 0.0

    sums = {k: v.sum() for k, v in per_item.items()}
    out = {"n": len(gold), "accuracy": accuracy(sums), "macro_f1": macro_f1(sums)}
    if bootstrap:
        out["accuracy_ci95"] = bootstrap_ci({"correct": correct}, lambda s: s["correct"] / len(gold), bootstrap)
        out["macro_f1_ci95"] = bootstrap_ci(per_item, macro_f1, bootstrap)
    out["per_domain_accuracy"] = {c: _ratio(sums[f"tp:{c}"], sums[f"gold:{c}"]) for c in labels}
    if groups is not None:
        out["per_group"] = _per_group(groups, lambda idx: {"n": len(idx), "accuracy": float(correct[idx].mean())})
    return out


def icner_metrics(examples, domains=None, locales=None, bootstrap=1000):
    """examples: (utterance text, gold intent, gold slots, predicted intent, predicted slots).

    Intent accuracy; slot precision/recall/F1 (seqeval, micro and per type); SemER; exact match;
    95% bootstrap CIs of the headline numbers; the same per domain and per locale when given.
    """
    examples = list(examples)
    per_item = icner_items(examples)
    out = _icner_from_items(per_item)
    gold_bio = [char_bio(e[0], e[2]) for e in examples]
    pred_bio = [char_bio(e[0], e[4]) for e in examples]
    out["slot_precision"] = float(precision_score(gold_bio, pred_bio, zero_division=0))
    out["slot_recall"] = float(recall_score(gold_bio, pred_bio, zero_division=0))
    out["slot_f1"] = float(f1_score(gold_bio, pred_bio, zero_division=0))
    any_slot = any(tag != "O" for tags in gold_bio + pred_bio for tag in tags)  # else seqeval averages over no types
    report = classification_report(gold_bio, pred_bio, output_dict=True, zero_division=0) if any_slot else {}
    out["per_slot_type"] = {k: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"],
                                "support": int(v["support"])}
                            for k, v in report.items() if not k.endswith(" avg")}
    if bootstrap and examples:
        ci = {"intent_accuracy": lambda s: s["intent"] / n, "exact_match": lambda s: s["exact"] / n,
              "slot_f1": lambda s: _ratio(2 * s["tp"], s["gold"] + s["pred"]),
              "semer": lambda s: _ratio(s["errors"], s["reference"])}
        n = len(examples)
        for name, statistic in ci.items():
            out[f"{name}_ci95"] = bootstrap_ci(per_item, statistic, bootstrap)
    for key, groups in (("per_domain", domains), ("per_locale", locales)):
        if groups is not None:
            out[key] = _per_group(groups, lambda idx: _icner_from_items({k: v[idx] for k, v in per_item.items()}))
    return out


def icner_items(examples):
    """Per-utterance counts of ICNER examples (arrays [n]): intent right, slots right (tp), gold and
    predicted slots, SemER errors and reference size, exact match. Every headline metric but
    seqeval's is a ratio of their sums, so they are what a bootstrap resamples."""
    stats = defaultdict(list)
    for text, g_intent, g_slots, p_intent, p_slots in examples:
        g = Counter((s.type, s.start, s.end) for s in g_slots)
        p = Counter((s.type, s.start, s.end) for s in p_slots)
        errors, reference = semantic_errors(g_intent, g_slots, p_intent, p_slots)
        stats["intent"].append(g_intent == p_intent)
        stats["tp"].append(sum((g & p).values()))
        stats["gold"].append(len(g_slots))
        stats["pred"].append(len(p_slots))
        stats["errors"].append(errors)
        stats["reference"].append(reference)
        stats["exact"].append(g_intent == p_intent and g == p)
    return {k: np.array(stats[k], dtype=float) for k in ICNER_ITEMS}


ICNER_ITEMS = ("intent", "tp", "gold", "pred", "errors", "reference", "exact")


def _icner_from_items(items):
    n = len(items["intent"])
    return {"n": n, "intent_accuracy": _ratio(items["intent"].sum(), n),
            "slot_f1_spans": _ratio(2 * items["tp"].sum(), items["gold"].sum() + items["pred"].sum()),
            "semer": _ratio(items["errors"].sum(), items["reference"].sum()),
            "exact_match": _ratio(items["exact"].sum(), n)}


def _per_group(groups, compute):
    index = defaultdict(list)
    for i, g in enumerate(groups):
        index[g].append(i)
    return {g: compute(np.array(idx)) for g, idx in sorted(index.items())}


def _t_quantile(q, dof):
    """Student's t quantile. scipy comes with scikit-learn, which seqeval needs; imported here, as
    only the study's statistics need it, not every finetuning run that imports these metrics."""
    from scipy.stats import t
    return float(t.ppf(q, dof))


def mean_ci(values):
    """Mean and 95% t-interval over runs (seeds): (mean, low, high); no interval from one run."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if len(values) == 0:
        return None, None, None
    mean = float(values.mean())
    if len(values) == 1:
        return mean, None, None
    half = _t_quantile(0.975, len(values) - 1) * float(values.std(ddof=1)) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def minimum_detectable_difference(sd, n, power=0.8):
    """The smallest true paired difference that a two-sided 5% paired t-test over n seeds detects
    with the given power, when per-seed differences spread with standard deviation sd:
    (t(0.975, n-1) + t(power, n-1)) * sd / sqrt(n). None below 2 seeds."""
    if sd is None or n < 2:
        return None
    return (_t_quantile(0.975, n - 1) + _t_quantile(power, n - 1)) * sd / np.sqrt(n)
