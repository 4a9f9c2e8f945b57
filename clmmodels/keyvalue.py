"""Two-column settings files users write by hand (an event mapping, per-stage rewards): a CSV
with a header naming the two columns, or YAML mapping each key to its value."""

from __future__ import annotations

from pathlib import Path

from .errors import ClmError


def read_pairs(path: str | Path, key: str, value: str, what: str) -> list[tuple[str, str]]:
    """The (key, value) rows of ``path``, in file order, as text; ``what`` names the file's
    purpose in errors (``"the event mapping"``). ``.yml``/``.yaml`` is YAML, anything else CSV
    with the columns ``key,value``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = pathlib.Path(tmp, "r.yml")
    ...     _ = p.write_text("retention: 30")
    ...     read_pairs(p, "stage", "reward", "the rewards")
    [('retention', '30')]
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ClmError(f"{path}: cannot read {what} ({err})") from None
    if path.suffix in (".yml", ".yaml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ClmError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(doc, dict) or not doc:
            raise ClmError(f"{path}: {what} must map each {key} to its {value}")
        return [(str(k), str(v)) for k, v in doc.items()]
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0][:2]] != [key, value]:
        raise ClmError(f"{path}: {what} needs the columns {key},{value}")
    pairs = [(r[0].strip(), r[1].strip()) for r in rows[1:] if len(r) >= 2 and r[0].strip()]
    if not pairs:
        raise ClmError(f"{path}: {what} has no rows")
    return pairs
