"""Distillation budgets as people write them: 300000, 300k, 1M, 2.5M (transfer tokens)."""
import re

BUDGET = re.compile(r"([\d.]+)([kKmMgG]?)")


def tokens(text):
    """'300k' -> 300000, or None when text is not a budget."""
    match = BUDGET.fullmatch(text)
    if not match or match.group(1).count(".") > 1:
        return None
    return int(float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()])


if __name__ == "__main__":  # reproduce.sh: python -m common.budget 300k 1M -> one token count a line
    import sys
    for text in sys.argv[1:]:
        print(tokens(text))
