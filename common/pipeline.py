"""The deployed NLU system of Peris et al.: a DC model predicts each utterance's domain, and the
ICNER model of that domain gives its intent and slots. A package folder holds them all as ONNX
(package.py builds it; variant "torch" holds the finetuned PyTorch folders instead, the baseline a
deployment is measured against) with a manifest that says which model serves which domain:

    manifest.json   {"format": "kd-transfer-nlu-package", "version": 1, "variant": "int8",
                     "dc": "dc", "icner": {"alarm": "icner/alarm", ...}}   # or {"*": "icner"}

"*" is one ICNER model for every domain. Every domain the DC model can predict has a model: a
package that lacks one does not open (the error names the domain), so routing never meets a
domain it cannot serve.
"""
from pathlib import Path

from common.fast_tokenizer import tokenizer_definition
from common.inference import open_model
from common.jsonl import read_json
from common.onnx_models import ONNX_FILE
from common.run import UsageError
from common.tasks import TASKS, encode_batch, length_batches

MANIFEST = "manifest.json"
FORMAT = "kd-transfer-nlu-package"
EVERY_DOMAIN = "*"


def is_package(folder):
    return (Path(folder) / MANIFEST).is_file()


def is_model_folder(folder):
    """An exported ONNX folder, or a finetuned PyTorch one (a "torch" package: the baseline)."""
    return (folder / ONNX_FILE).is_file() or any((folder / w).is_file() for w in ("model.safetensors", "pytorch_model.bin"))


def read_manifest(folder):
    """The manifest, checked: every model it names is an exported ONNX folder in the package."""
    path = Path(folder) / MANIFEST
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{path}: not a {FORMAT} manifest")
    if not isinstance(manifest.get("dc"), str) or not isinstance(manifest.get("icner"), dict) or not manifest["icner"]:
        raise UsageError(f"{path}: needs \"dc\" (a folder) and \"icner\" ({{domain: folder}})")
    for field, relative in [("dc", manifest["dc"])] + [(f"icner.{d}", p) for d, p in manifest["icner"].items()]:
        if not is_model_folder(Path(folder) / relative):
            raise UsageError(f"{path}: {field} names {relative}, which has no {ONNX_FILE} "
                             f"(nor PyTorch weights, for a torch package) in the package")
    return manifest


def same_tokenizer_as(tokenizer):
    """A test of another tokenizer: does it split and number every text as this one does?"""
    reference = tokenizer_definition(tokenizer)
    return lambda other: tokenizer_definition(other) == reference


class Pipeline:
    """DC, then the ICNER model of the predicted (or a given) domain, batched per domain."""
    task_name = "nlu"

    def __init__(self, folder, threads=None):
        folder = Path(folder)
        self.manifest = read_manifest(folder)
        self.dc = open_model(folder / self.manifest["dc"], threads)
        self.icner = {domain: open_model(folder / relative, threads) for domain, relative in self.manifest["icner"].items()}
        unserved = [d for d in self.dc.labels["domains"] if self.icner_for(d) is None]
        if unserved:
            raise UsageError(f"{folder / MANIFEST}: the DC model predicts {', '.join(unserved)}, which no ICNER model "
                             f"serves (add one per domain, or \"{EVERY_DOMAIN}\": one for every domain)")
        self.tokenizer = self.dc.tokenizer  # for length checks: the window is the same for every model
        vocabulary = same_tokenizer_as(self.tokenizer)
        self.shares_tokenizer = {route: vocabulary(model.tokenizer) for route, model in self.icner.items()}

    def route(self, domain):
        """The manifest key of the model that serves a domain (None: no model does)."""
        return domain if domain in self.icner else EVERY_DOMAIN if EVERY_DOMAIN in self.icner else None

    def icner_for(self, domain):
        return self.icner.get(self.route(domain))

    def predict(self, texts, max_length=64, batch_size=64, domains=None):
        """(domain, intent, slots) per text, routed by the DC model's domains or by `domains` (gold
        routing: what the system would score with a perfect DC model). A given domain that no
        ICNER model serves gets no intent and no slots. Each batch is tokenised once for the DC
        model and every ICNER model of the same tokenizer (the students share their teacher's)."""
        results = [None] * len(texts)
        for rows in length_batches(texts, batch_size):
            enc = encode_batch(self.tokenizer, [texts[i] for i in rows], max_length)
            routed = [domains[i] for i in rows] if domains is not None else self.dc.predict_encoded(enc, rows, texts)
            by_model = {}  # one call per model, not per domain: a global model serves every domain at once
            for j, domain in enumerate(routed):
                by_model.setdefault(self.route(domain), []).append(j)
            for route, js in by_model.items():
                model, sub_rows = self.icner.get(route), [rows[j] for j in js]
                if model is None:
                    answers = [(None, [])] * len(js)
                elif self.shares_tokenizer[route]:
                    answers = model.predict_encoded({k: v[js] for k, v in enc.items()}, sub_rows, texts)
                else:
                    answers = model.predict([texts[i] for i in sub_rows], max_length, batch_size)
                for j, (intent, slots) in zip(js, answers):
                    results[rows[j]] = (routed[j], intent, slots)
        return results

    def record(self, text, prediction):
        domain, intent, slots = prediction
        return {"domain": domain, **TASKS["icner"].record(text, (intent, slots))}


def score_package(pipeline, utterances, max_length=64, batch_size=64, bootstrap=0):
    """The system end to end: DC accuracy, and ICNER metrics with each utterance routed by the DC
    model's prediction and, beside it, by its gold domain; what routing costs is their difference."""
    dc, icner = TASKS["dc"], TASKS["icner"]
    texts = [u.text for u in utterances]
    routed = pipeline.predict(texts, max_length, batch_size)
    gold = pipeline.predict(texts, max_length, batch_size, domains=[u.domain for u in utterances])
    metrics = {"dc": dc.score(utterances, [r[0] for r in routed], bootstrap),
               "predicted_routing": icner.score(utterances, [r[1:] for r in routed], bootstrap),
               "gold_routing": icner.score(utterances, [r[1:] for r in gold], bootstrap)}
    metrics["routing_cost_points"] = {
        name: round(100 * (metrics["gold_routing"][name] - metrics["predicted_routing"][name]), 3)
        for name in ("intent_accuracy", "exact_match", "slot_f1")}
    metrics["headline"] = icner.headline(metrics["predicted_routing"])
    return metrics, routed


def with_domains(utterances, data):
    """Scoring routing needs each utterance's gold domain."""
    from common.utterance import NO_DOMAIN
    if any(u.domain == NO_DOMAIN for u in utterances):
        raise UsageError(f"--data {' '.join(data)}: utterances without a domain cannot score the routing "
                         "(MASSIVE, or CoNLL with '# domain = X' comments)")
    return utterances


def print_scores(m):
    print(f"dev, {m['dc']['n']} utterances: DC accuracy {100 * m['dc']['accuracy']:.2f}")
    for routing in ("predicted_routing", "gold_routing"):
        r = m[routing]
        print(f"  {routing.replace('_', ' '):<18} intent {100 * r['intent_accuracy']:6.2f}  slot F1 "
              f"{100 * r['slot_f1']:6.2f}  exact match {100 * r['exact_match']:6.2f}")
    print("  routing costs " + ", ".join(f"{k} {v:+.2f} points" for k, v in m["routing_cost_points"].items()))


def checked_folder(folder):
    """The folder whose config.json says how long an input may be: a package's DC model."""
    return Path(folder) / read_manifest(folder)["dc"] if is_package(folder) else Path(folder)
