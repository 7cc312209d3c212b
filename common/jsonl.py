"""Reading JSONL with errors that name the file and line."""
import json
from pathlib import Path

from common.run import UsageError


def read_json(path):
    """One JSON file, or a one-line error naming it (a truncated or foreign file)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not JSON ({err}); the file may be truncated") from None


def read_jsonl(path):
    """Yield (line_number, object) for every non-blank line of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        f = open(path, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None
    with f:
        try:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UsageError(f"{path}:{number}: malformed JSON ({err.msg})") from None
                if not isinstance(obj, dict):
                    raise UsageError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
                yield number, obj
        except UnicodeDecodeError:
            raise UsageError(f"{path}: not UTF-8 text") from None
