"""A study's conditions as records: how each condition's student is made, and the folder name
that says so. The runner (reproduce.sh, through common.profiles) makes them; aggregate.py reads
them back from the folders (common.study). Kept apart so that making the study's job list
imports nothing heavy."""
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional


@dataclass(frozen=True)
class Condition:
    """How a condition's student is made; its name is its folder's. The runner (reproduce.sh, through
    common.profiles) makes these, aggregate.py reads them back from the folders."""
    kind: str                   # one of KINDS
    ratio: Optional[str] = None  # distill and adapted: the target ratio as RATIOS writes it ("0.3")

    KINDS = ("scratch", "undistilled", "distill", "adapted", "teacher")
    DISTILLED = ("distill", "adapted")  # distilled over a transfer set: a ratio, and a budget

    @property
    def name(self):
        return f"{self.kind}_r{self.ratio}" if self.kind in self.DISTILLED else self.kind

    @property
    def transfer_set(self):
        """What a distilled condition's transfer set is, in the question's words ('generic-only',
        'target-only', '7:3 generic:target'); None for the others, whose names say it."""
        if self.kind not in self.DISTILLED:
            return None
        target = Fraction(self.ratio).limit_denominator(100)
        words = {0: "generic-only", 1: "target-only"}.get(target) or \
            f"{target.denominator - target.numerator}:{target.numerator} generic:target"
        return words if self.kind == "distill" else f"adapted teacher, {words}"

    @classmethod
    def of(cls, name):
        """The condition a folder holds, or None for a folder that is no condition."""
        kind, sep, ratio = name.partition("_r")
        if kind not in cls.KINDS or bool(sep) != (kind in cls.DISTILLED):
            return None
        try:
            float(ratio or 0)
        except ValueError:
            return None
        return cls(kind, ratio or None)

    def order(self):
        """scratch, undistilled, distilled by ratio, adapted-teacher students by ratio, teacher."""
        return self.KINDS.index(self.kind), float(self.ratio or 0)


def condition_order(name):
    condition = Condition.of(name)
    return condition.order() if condition else (len(Condition.KINDS), 0.0)


def transfer_set_of(name):
    condition = Condition.of(name)
    return condition.transfer_set if condition else None


def described(name):
    """`distill_r0` (generic-only): a condition's folder name with its transfer set, for reports."""
    words = transfer_set_of(name)
    return f"`{name}` ({words})" if words else f"`{name}`"
