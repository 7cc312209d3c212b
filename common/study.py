"""A study's results: collected from its folders, summarised over seeds, and compared.

The layout is reproduce.sh's: OUT_ROOT/seed<S>/<condition>/{dc_test.json, icner_test.json,
student/run.json, dc/run.json, icner/run.json}, and for a budget sweep OUT_ROOT/budget_<B>/ holding
one such study per budget. Each of the paper's findings is a paired comparison of two conditions:
a t-interval over seeds and a bootstrap over seeds and test utterances (common.metrics). With
several locales, each finding is also contrasted between every two locales: is its difference
larger in one than in the other?
"""
import json
from collections import defaultdict
from itertools import combinations

import numpy as np

from common.budget import tokens as budget_tokens
from common.conditions import condition_order
from common.metrics import contrast_bootstrap_ci, mean_ci, minimum_detectable_difference, paired_bootstrap_ci
from common.run import UsageError

METRICS = [("dc_accuracy", "dc_test.json", "accuracy", True),
           ("intent_accuracy", "icner_test.json", "intent_accuracy", True),
           ("slot_f1", "icner_test.json", "slot_f1", True),
           ("semer", "icner_test.json", "semer", False),
           ("exact_match", "icner_test.json", "exact_match", True)]
# Each metric from summed per-utterance counts (evaluate.py's per_utterance), vectorised for the
# bootstrap. slot_f1 is the span F1, which equals seqeval's on these non-overlapping spans.
STATISTICS = {"dc_accuracy": lambda s, n: s["correct"] / n,
              "intent_accuracy": lambda s, n: s["intent"] / n,
              "slot_f1": lambda s, n: 2 * s["tp"] / np.maximum(s["gold"] + s["pred"], 1),
              "semer": lambda s, n: s["errors"] / np.maximum(s["reference"], 1),
              "exact_match": lambda s, n: s["exact"] / n}
BOOTSTRAP_SAMPLES = 2000
BASELINE = "distill_r0"  # generic only
# The paper's findings as paired comparisons (better, worse, claim): per seed, the difference of
# the two conditions (sign flipped for SemER, so positive always means 'better' holds).
FINDINGS = [("distill_r0", "scratch", "distillation (even generic-only) beats training from scratch"),
            # not one of the paper's claims: whether the transfer set a user would pick beats no distillation
            ("distill_r1", "scratch", "target-only distillation beats training from scratch"),
            # students that start from the teacher's weights: does the start or the distillation do it?
            ("undistilled", "scratch", "the teacher's weights alone (undistilled start) beat scratch"),
            ("distill_r0", "undistilled", "distillation adds to the inherited start (generic-only)"),
            ("distill_r1", "undistilled", "distillation adds to the inherited start (target-only)"),
            ("distill_r0.3", "distill_r0", "7:3 generic:target beats generic only"),
            ("distill_r1", "distill_r0.3", "target only beats 7:3 generic:target"),
            ("distill_r1", "distill_r0", "target only beats generic only"),
            ("adapted_r1", "distill_r1", "an adapted teacher helps (target-only transfer set)"),
            ("adapted_r0", "distill_r0", "an adapted teacher helps (generic-only transfer set)")]


def read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect(out_root):
    """{condition: {seed: {"metrics": {(locale, metric): value}, "budget": ..., "wall": {...}}}}."""
    runs = defaultdict(dict)
    for seed_dir in sorted(out_root.glob("seed*")):
        for cond_dir in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
            values, wall, utterances = {}, {}, {}
            for name, file, key, _ in METRICS:
                result = read_json(cond_dir / file)
                if result is None:
                    continue
                m = result["metrics"]
                if "per_utterance" in result:
                    utterances[name] = result["per_utterance"]
                values[("all", name)] = m[key]
                if name == "dc_accuracy":
                    for locale, group in m.get("per_group", {}).items():
                        values[(locale, name)] = group["accuracy"]
                else:
                    for locale, group in m.get("per_locale", {}).items():
                        values[(locale, name)] = group[{"slot_f1": "slot_f1_spans"}.get(key, key)]
            for step in ("student", "dc", "icner"):
                run = read_json(cond_dir / step / "run.json")
                if run:
                    wall[step] = run["timings"]["wall_s"]
            student = read_json(cond_dir / "student" / "run.json")
            runs[cond_dir.name][seed_dir.name] = {
                "metrics": values, "wall": wall, "utterances": utterances,
                "ratio": student["transfer"]["target_ratio"] if student and student["transfer"]["tokens_seen"] else None,
                "tokens": student["transfer"]["tokens_seen"] if student else None}
    if not runs:
        raise UsageError(f"--out-root {out_root}: no seed*/<condition> results found")
    return runs


def locales_of(runs):
    """"all" first, then each locale; just "all" when there is one locale (its rows would repeat it)."""
    locales = sorted({loc for seeds in runs.values() for r in seeds.values() for loc, _ in r["metrics"]},
                     key=lambda loc: (loc != "all", loc))
    return ["all"] if len(locales) == 2 else locales


def summarise(runs):
    rows = []
    locales = locales_of(runs)
    for cond in sorted(runs, key=condition_order):
        seeds = runs[cond]
        for locale in locales:
            for name, _, _, _ in METRICS:
                values = [r["metrics"].get((locale, name)) for r in seeds.values()]
                if all(v is None for v in values):
                    continue
                mean, low, high = mean_ci(values)
                row = {"condition": cond, "locale": locale, "metric": name, "seeds": sum(v is not None for v in values),
                       "mean": mean, "ci_low": low, "ci_high": high}
                base = runs.get(BASELINE, {})
                gaps = [r["metrics"].get((locale, name)) - base[s]["metrics"][(locale, name)]
                        for s, r in seeds.items() if s in base and r["metrics"].get((locale, name)) is not None
                        and (locale, name) in base[s]["metrics"]]
                row["gap_vs_generic"], row["gap_ci_low"], row["gap_ci_high"] = mean_ci(gaps) if cond != BASELINE else (None,) * 3
                row["distill_tokens"] = next((r["tokens"] for r in seeds.values() if r["tokens"] is not None), None)
                for step in ("student", "dc", "icner"):
                    walls = [r["wall"][step] for r in seeds.values() if step in r["wall"]]
                    row[f"{step}_wall_s"] = round(sum(walls) / len(walls), 1) if walls else None
                rows.append(row)
    return rows


def findings(runs, locale="all"):
    """One row per (finding, metric) whose two conditions both ran: the mean paired difference
    over seeds with its 95% t-interval, the paired bootstrap interval over seeds and test
    utterances, and a verdict that needs both intervals to exclude 0 (see verdict())."""
    rows = []
    for better, worse, claim in FINDINGS:
        if better not in runs or worse not in runs:
            continue
        for name, _, _, higher in METRICS:
            sign = 1 if higher else -1
            seeds = [s for s, r in runs[better].items()
                     if s in runs[worse] and (locale, name) in r["metrics"] and (locale, name) in runs[worse][s]["metrics"]]
            if not seeds:
                continue
            diffs = seed_differences(runs, better, worse, seeds, name, locale, sign)
            boot = paired_bootstrap(runs, better, worse, seeds, name, locale, sign)
            rows.append(comparison_row(claim, better, worse, name, locale, diffs, boot))
    return rows


def seed_differences(runs, better, worse, seeds, name, locale, sign):
    """Per seed, better's metric minus worse's in one locale (sign -1 flips SemER)."""
    return [sign * (runs[better][s]["metrics"][(locale, name)] - runs[worse][s]["metrics"][(locale, name)])
            for s in seeds]


def comparison_row(claim, better, worse, name, locale, diffs, boot):
    """A findings.csv / contrasts.csv row: per-seed differences summarised (mean, t-interval, sd and
    the minimum detectable difference that plan the seeds a CI needs), the bootstrap interval
    boot = (low, high), and the verdict that needs both."""
    mean, low, high = mean_ci(diffs)
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
    return {"claim": claim, "better": better, "worse": worse, "metric": name, "locale": locale,
            "seeds": len(diffs), "diff": mean, "ci_low": low, "ci_high": high,
            "sd": sd, "mdd": minimum_detectable_difference(sd, len(diffs)),
            "boot_low": boot[0], "boot_high": boot[1], "verdict": verdict(low, high, *boot)}


def verdict(low, high, boot_low, boot_high):
    """Reproduced / reversed only when the t-interval over seeds and, where per-utterance results
    exist, the bootstrap interval over seeds and utterances both exclude 0 on the same side: the
    first ignores the test set's sampling, the second underestimates a few seeds' spread."""
    if low is None:
        return "one seed: no CI"
    intervals = [(low, high)] + ([(boot_low, boot_high)] if boot_low is not None else [])
    if all(lo > 0 for lo, _ in intervals):
        return "reproduced"
    if all(hi < 0 for _, hi in intervals):
        return "reversed"
    return "not resolved (CI spans 0)"


def paired_bootstrap(runs, better, worse, seeds, name, locale, sign):
    """(low, high) of the paired bootstrap (common.metrics.paired_bootstrap_ci); None without
    per-utterance results or when the two conditions were scored on different utterances."""
    pair = per_utterance_pair(runs, better, worse, seeds, name, locale)
    if pair is None:
        return None, None
    _, low, high = paired_bootstrap_ci(*pair, STATISTICS[name], samples=BOOTSTRAP_SAMPLES)
    return (sign * low, sign * high) if sign > 0 else (sign * high, sign * low)


def per_utterance_pair(runs, better, worse, seeds, name, locale):
    """([better's per-utterance counts per seed], [worse's]) on one locale's test utterances (all:
    every one), or None without per-utterance results, with fewer than 2 seeds, or when the two
    conditions were scored on different utterances."""
    pairs = [(runs[better][s]["utterances"].get(name), runs[worse][s]["utterances"].get(name)) for s in seeds]
    if len(seeds) < 2 or any(b is None or w is None or b["id"] != w["id"] or b["id"] != pairs[0][0]["id"]
                             for b, w in pairs):
        return None
    keep = np.array([locale in ("all", loc) for loc in pairs[0][0]["locale"]])
    items = [[{k: np.asarray(v)[keep] for k, v in u.items() if k not in ("id", "locale")} for u in pair]
             for pair in pairs]
    return [b for b, _ in items], [w for _, w in items]


def locale_contrasts(runs):
    """Is a finding's difference larger in one locale than in another? One row per finding,
    metric and two locales a, b (as findings(): "locale" is "a - b"): per seed, the difference in a
    minus the difference in b, its t-interval over seeds, and a bootstrap over seeds and each
    locale's test utterances (common.metrics.contrast_bootstrap_ci). "reproduced" reads "larger
    in a", "reversed" "larger in b"."""
    rows = []
    locales = [loc for loc in locales_of(runs) if loc != "all"]
    for (a, b), (better, worse, claim) in ((pair, f) for pair in combinations(locales, 2) for f in FINDINGS):
        if better not in runs or worse not in runs:
            continue
        for name, _, _, higher in METRICS:
            sign = 1 if higher else -1
            seeds = [s for s in runs[better] if s in runs[worse]
                     and all((loc, name) in runs[c][s]["metrics"] for c in (better, worse) for loc in (a, b))]
            if not seeds:
                continue
            contrasts = [d_a - d_b for d_a, d_b in zip(*(seed_differences(runs, better, worse, seeds, name, loc, sign)
                                                          for loc in (a, b)))]
            boot = (None, None)
            pairs = [per_utterance_pair(runs, better, worse, seeds, name, loc) for loc in (a, b)]
            if None not in pairs:
                _, low, high = contrast_bootstrap_ci(*pairs, STATISTICS[name], samples=BOOTSTRAP_SAMPLES)
                boot = (low, high) if sign > 0 else (-high, -low)
            rows.append(comparison_row(claim, better, worse, name, f"{a} - {b}", contrasts, boot))
    return rows



SWEEP_GAINS = [("distill_r1", "target only"), ("distill_r0.3", "7:3 generic:target")]  # each vs generic only


def budget_of(folder):
    """budget_300k -> 300000 (k, M, G suffixes), None for another folder."""
    return budget_tokens(folder.name.removeprefix("budget_")) if folder.name.startswith("budget_") else None


def collect_sweep(out_root):
    """[(budget tokens, folder name, runs)] of OUT_ROOT/budget_*/, by budget."""
    budgets = sorted((budget_of(d), d.name, collect(d)) for d in out_root.glob("budget_*")
                     if d.is_dir() and budget_of(d) is not None)
    if len(budgets) < 1:
        raise UsageError(f"--sweep {out_root}: no budget_<tokens>/ folders (run reproduce.sh with BUDGETS)")
    return budgets


def sweep_rows(budgets):
    """Per budget and metric: each condition's mean and CI, and each gain over generic-only with
    its t-interval, bootstrap interval and verdict (findings())."""
    rows = []
    for tokens, name, runs in budgets:
        for r in summarise(runs):
            if r["locale"] == "all":
                rows.append({"budget": name, "tokens": tokens, "kind": "mean", "condition": r["condition"],
                             "metric": r["metric"], "seeds": r["seeds"], "value": r["mean"], "ci_low": r["ci_low"],
                             "ci_high": r["ci_high"], "boot_low": None, "boot_high": None, "verdict": None})
        gains = {better for better, _ in SWEEP_GAINS}
        for f in findings(runs):
            if f["better"] in gains and f["worse"] == BASELINE:
                rows.append({"budget": name, "tokens": tokens, "kind": "gain", "condition": f["better"],
                             "metric": f["metric"], "seeds": f["seeds"], "value": f["diff"], "ci_low": f["ci_low"],
                             "ci_high": f["ci_high"], "boot_low": f["boot_low"], "boot_high": f["boot_high"],
                             "verdict": f["verdict"]})
    return rows


