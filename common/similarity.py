"""How different is a target domain from the generic corpus? Token-distribution similarity.

similarity = 1 - JSD(P_generic || P_domain), with P the unigram distributions of teacher-tokenizer
tokens and JSD the Jensen-Shannon divergence in bits (0 for identical distributions, 1 for
disjoint ones). It is symmetric, bounded and defined without smoothing even when a token occurs
in one corpus only, which is the common case for domain words; and it is computed with the
teacher's own tokenizer, i.e. in the units the teacher's predictions are made in.
"""
from collections import Counter

import numpy as np


def token_counts(tokenizer, texts, batch_size=2048):
    counts = Counter()
    for start in range(0, len(texts), batch_size):
        for ids in tokenizer(texts[start:start + batch_size], add_special_tokens=False, verbose=False)["input_ids"]:
            counts.update(ids)
    return counts


def js_divergence(counts_a, counts_b):
    """Jensen-Shannon divergence (bits) between two token-count distributions."""
    vocab = sorted(set(counts_a) | set(counts_b))
    p = np.array([counts_a.get(t, 0) for t in vocab], dtype=float)
    q = np.array([counts_b.get(t, 0) for t in vocab], dtype=float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())
    return max(0.0, (kl(p) + kl(q)) / 2)


def similarity(counts_a, counts_b):
    return 1.0 - js_divergence(counts_a, counts_b)


def spearman(x, y):
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = v.argsort()
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_p_value(x, y, permutations=10000, seed=0):
    """Two-sided permutation p-value of Spearman's rho: with 18 domains, a correlation of 0.3 is
    well within what shuffled gains give, and the reader should see that."""
    observed = spearman(x, y)
    if np.isnan(observed):
        return float("nan")
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=float)
    shuffled = np.array([spearman(x, rng.permutation(y)) for _ in range(permutations)])
    return float((np.sum(np.abs(shuffled) >= abs(observed) - 1e-12) + 1) / (permutations + 1))
