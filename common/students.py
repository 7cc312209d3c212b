"""The study's student axis (STUDENTS): each student a shape and a start, its own study folder,
and the distill.py flags that make it. Kept apart from the heavy modules so that resolving the
knobs imports nothing but the standard library."""
import re
from dataclasses import dataclass

INITS = ("auto", "select", "teacher", "random")
COPYING_INITS = ("select", "teacher")  # starts from the teacher's weights
_SPEC = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)(?:x([1-9][0-9]*))?(?::([a-z]+))?$")


class StudentError(ValueError):
    """A STUDENTS or STUDENT_DISTILL_FLAGS entry that names no student."""


@dataclass(frozen=True)
class Student:
    spec: str                  # as STUDENTS writes it: 4x384:teacher
    layers: int
    hidden: int
    heads: str                 # a number, or auto (distill.py: the teacher's at its width, else hidden / 64)
    init: str                  # one of INITS
    flags: str = ""            # more distill.py flags for this student (STUDENT_DISTILL_FLAGS)

    @property
    def name(self):
        """As job records and job names write it: 4x384-teacher."""
        return self.spec.replace(":", "-")

    @property
    def folder(self):
        """Its study's folder under OUT_ROOT: student_4x384-teacher."""
        return "student_" + self.name

    @property
    def copies_weights(self):
        """Starts from the teacher's weights, so the undistilled control says what distillation adds."""
        return self.init in COPYING_INITS

    def distill_args(self):
        """distill.py's shape and start flags, then this student's own."""
        return ["--student-layers", str(self.layers), "--student-hidden", str(self.hidden),
                "--student-heads", self.heads, "--student-init", self.init, *self.flags.split()]


def parse_student(spec, default_init, flags=""):
    """A STUDENTS entry, LAYERSxHIDDEN[xHEADS][:INIT]: 2x128, 4x384:teacher, 4x384x6:select."""
    match = _SPEC.match(spec)
    if not match:
        raise StudentError(f"STUDENTS holds '{spec}' (a student is LAYERSxHIDDEN[xHEADS][:INIT], e.g. 2x128 or "
                           "4x384:teacher)")
    layers, hidden, heads, init = match.groups()
    if init is not None and init not in INITS:
        raise StudentError(f"STUDENTS holds '{spec}': its start '{init}' is not one of {', '.join(INITS)}")
    if heads and int(hidden) % int(heads):
        raise StudentError(f"STUDENTS holds '{spec}': {heads} heads do not divide the width {hidden}")
    return Student(spec, int(layers), int(hidden), heads or "auto", init or default_init, flags)


def parse_flags(text, specs):
    """STUDENT_DISTILL_FLAGS, 'SPEC=flags; SPEC=flags', as {spec: flags}; each SPEC one of STUDENTS."""
    flags = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        spec, sep, value = entry.partition("=")
        spec = spec.strip()
        if not sep or spec not in specs:
            raise StudentError(f"STUDENT_DISTILL_FLAGS holds '{entry}' (use 'STUDENT=flags; ...' with a student of "
                               f"STUDENTS: {' '.join(specs) or 'none set'})")
        flags[spec] = value.strip()
    return flags


def students(knobs):
    """The study's students from its knobs; [] without STUDENTS (the one student of STUDENT_*)."""
    specs = knobs["STUDENTS"].split()
    if len(set(specs)) != len(specs):
        raise StudentError(f"STUDENTS names a student twice: {knobs['STUDENTS']}")
    flags = parse_flags(knobs["STUDENT_DISTILL_FLAGS"], specs)
    return [parse_student(spec, knobs["STUDENT_INIT"], flags.get(spec, "")) for spec in specs]
