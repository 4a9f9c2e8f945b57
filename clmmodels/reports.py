"""The report batch: run parameterised notebooks through papermill and render HTML.

A config (YAML) lists runs: a notebook, a dataset and parameters. Each run executes in its own
process; a success becomes one self-contained HTML file (code hidden, images embedded), a
failure keeps its executed notebook with the failing cell marked and does not stop the others.
A run whose notebook, parameters, data and package are unchanged since its last success is
skipped. Every file is written to a temporary name and renamed, so a killed batch never leaves
a half-written report that looks complete.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import html
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .errors import ClmError

#: Mime type of the key numbers a notebook records for the index page.
KEY_NUMBERS_MIME = "application/vnd.clm.key-numbers+json"
MANIFEST = "manifest.json"


def record_key_numbers(**numbers: object) -> None:
    """Record a notebook's headline numbers for the batch's index page (invisible in HTML)."""
    from IPython.display import display

    clean = {
        k: (v if isinstance(v, int | float | str | bool) or v is None else str(v))
        for k, v in numbers.items()
    }
    display({KEY_NUMBERS_MIME: clean}, raw=True)


@dataclass(frozen=True)
class Run:
    """One report: ``notebook`` run on ``dataset`` with ``parameters``."""

    name: str
    notebook: Path
    dataset: str
    parameters: dict = field(default_factory=dict)
    #: Folder the notebook runs in; relative dataset paths are relative to it.
    cwd: Path = Path()

    def all_parameters(self) -> dict:
        return {"dataset": self.dataset, **self.parameters}


@dataclass
class RunResult:
    name: str
    status: str  # "ok", "failed" or "unchanged"
    html: str | None = None
    notebook: str | None = None
    error: str | None = None
    key_numbers: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    seconds: float = 0.0
    key: str = ""


def load_config(path: str | Path) -> list[Run]:
    """Read a reports config. Relative notebook and dataset paths are relative to the config."""
    path = Path(path)
    if not path.exists():
        raise ClmError(f"{path}: no such reports config")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ClmError(f"{path}: not valid YAML ({err})") from None
    base = path.resolve().parent
    runs = []
    for i, entry in enumerate(cfg.get("runs", [])):
        missing = [k for k in ("name", "notebook", "dataset") if k not in entry]
        if missing:
            raise ClmError(f"{path}: run {i + 1} lacks {', '.join(missing)}")
        notebook = base / entry["notebook"]
        if not notebook.exists():
            raise ClmError(f"{path}: run {entry['name']!r}: notebook {notebook} does not exist")
        params = dict(entry.get("parameters") or {})
        runs.append(Run(entry["name"], notebook, str(entry["dataset"]), params, cwd=base))
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ClmError(f"{path}: run names must be unique; repeated: {', '.join(dupes)}")
    if not runs:
        raise ClmError(f"{path}: no runs")
    return runs


def _hash_files(h: hashlib._Hash, paths: Iterable[Path], root: Path | None = None) -> None:
    """Feed each file's name (its path below ``root`` when given) and contents to ``h``."""
    for p in sorted(paths):
        h.update((p.name if root is None else p.relative_to(root).as_posix()).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)


#: The libraries that compute or draw a report's numbers: a new release re-runs the reports.
COMPUTING_LIBRARIES = (
    "numpy", "scipy", "pandas", "pyarrow", "lifetimes", "scikit-learn", "lifelines", "duckdb",
    "matplotlib", "nbconvert", "papermill",
)  # fmt: skip


def code_fingerprint(package_dir: Path | None = None) -> str:
    """Hash of every file of the package, subpackages and templates included."""
    root = Path(__file__).parent if package_dir is None else Path(package_dir)
    files = [
        p for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    ]  # fmt: skip
    h = hashlib.sha256()
    _hash_files(h, files, root)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """The installed versions of :data:`COMPUTING_LIBRARIES` ("-" where one is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in COMPUTING_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def run_key(run: Run) -> str:
    """Hash of everything a report depends on: the notebook, its parameters, the data, every
    file of the package (templates included) and the versions of the libraries that compute
    the numbers. Any change re-runs the report; nothing else does."""
    from . import __version__

    h = hashlib.sha256()
    h.update(Path(run.notebook).read_bytes())
    h.update(json.dumps(run.all_parameters(), sort_keys=True, default=str).encode())
    h.update(__version__.encode())
    h.update(code_fingerprint().encode())
    h.update(json.dumps(library_versions(), sort_keys=True).encode())
    data = run.cwd / run.dataset
    if data.is_dir():
        _hash_files(h, (p for p in data.iterdir() if p.is_file()))
    else:  # a bundled dataset: its files come with lifetimes, whose version is hashed above
        h.update(run.dataset.encode())
    return h.hexdigest()


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; reports are for sharing
    os.replace(tmp, path)


def _key_numbers(nb) -> dict:
    found: dict = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if KEY_NUMBERS_MIME in data:
                found.update(data[KEY_NUMBERS_MIME])
    return found


def render_html(nb) -> str:
    """A self-contained HTML page of an executed notebook, code and prompts hidden."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_template_basedirs=[str(Path(__file__).parent / "templates")],
        template_name="clm",  # lab, minus the scripts it would fetch from a CDN
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(_without_key_numbers(nb))
    return body


def _without_key_numbers(nb):
    """A copy of ``nb`` without the key-number outputs, which are for the index only."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if KEY_NUMBERS_MIME not in o.get("data", {})]
    return nb


def execute_run(run: Run, out_dir: Path, key: str) -> RunResult:
    """Execute one run; never raises for a failing notebook (the result says so)."""
    import nbformat
    import papermill as pm

    start = time.perf_counter()
    executed_dir = out_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    executed = executed_dir / f"{run.name}.ipynb"
    tmp = executed_dir / f".{run.name}.tmp.ipynb"
    result = RunResult(
        run.name, "ok", notebook=str(executed), parameters=run.all_parameters(), key=key
    )
    try:
        with _stderr_to(executed_dir / f"{run.name}.log"):  # the kernel's own chatter
            pm.execute_notebook(
                str(run.notebook),
                str(tmp),
                parameters=run.all_parameters(),
                cwd=str(run.cwd),
                progress_bar=False,
                log_output=False,
                kernel_name="python3",
            )
    except Exception as err:  # the executed notebook marks the failing cell
        result.status = "failed"
        result.error = _short_error(err)
    if tmp.exists():
        os.replace(tmp, executed)
    if result.status == "ok":
        nb = nbformat.read(executed, as_version=4)
        result.key_numbers = _key_numbers(nb)
        page = out_dir / f"{run.name}.html"
        _atomic_write(page, render_html(nb))
        result.html = page.name
    result.seconds = round(time.perf_counter() - start, 2)
    return result


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _share_cores(workers: int) -> None:
    """Give each worker (and the kernel it starts) its share of the cores.

    Two kernels that each spin up an OpenMP team over every core (scikit-learn's gradient
    boosting does) oversubscribe the machine; measured on 2 cores, the churn notebook ran
    15x slower in a pair than alone. A value the user exported wins.
    """
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for var in _THREAD_VARS:
        os.environ.setdefault(var, share)


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's stderr (inherited by the kernel it starts) to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _short_error(err: Exception) -> str:
    name = getattr(err, "ename", type(err).__name__)
    value = getattr(err, "evalue", str(err))
    return f"{name}: {value}"[:500]


def run_reports(
    runs: list[Run],
    out_dir: str | Path = "reports",
    jobs: int = 2,
    only: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[RunResult]:
    """Run the batch and write ``index.html``; returns one result per selected run.

    Parameters
    ----------
    runs
        From :func:`load_config`.
    only
        A run name or a glob (``data_quality-*``) selecting runs; the rest keep their state.
    force
        Run even what is unchanged since its last success.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    selected = [r for r in runs if only is None or fnmatch.fnmatch(r.name, only)]
    if not selected:
        raise ClmError(f"--only {only!r} matches no run; runs: {', '.join(r.name for r in runs)}")

    results: list[RunResult] = []
    todo: list[tuple[Run, str]] = []
    for run in selected:
        key = run_key(run)
        prev = manifest.get(run.name)
        if (
            not force
            and prev
            and prev.get("status") == "ok"
            and prev.get("key") == key
            and (out / (prev.get("html") or "")).is_file()
        ):
            results.append(RunResult(**{**prev, "status": "unchanged"}))
        else:
            todo.append((run, key))

    bar = tqdm(total=len(todo), desc="reports", unit="run", disable=not progress or not todo)
    if todo:
        workers = max(1, min(jobs, len(todo)))
        # Workers start fresh ("spawn"), never as forks of this process: a fork copies the
        # locks of the threads DuckDB, Arrow and OpenMP have started here, and the child can
        # crash or hang on them (a segfault seen in a worker after an Arrow string parse).
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_share_cores, initargs=(workers,),
            mp_context=multiprocessing.get_context("spawn"),
        ) as pool:  # fmt: skip
            futures = {pool.submit(execute_run, run, out, key): run for run, key in todo}
            for fut in as_completed(futures):
                res = fut.result()
                results.append(res)
                bar.set_postfix_str(f"{res.name}: {res.status}")
                bar.update()
                manifest[res.name] = asdict(res)
                _atomic_write(manifest_path, json.dumps(manifest, indent=2, default=str))
    bar.close()
    order = {r.name: i for i, r in enumerate(runs)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    for res in results:
        if res.status == "unchanged":
            manifest[res.name] = {**asdict(res), "status": "ok"}
    _atomic_write(manifest_path, json.dumps(manifest, indent=2, default=str))
    _atomic_write(out / "index.html", index_html(runs, manifest))
    return results


def index_html(runs: list[Run], manifest: dict) -> str:
    """The batch's index page: every run with its status, key numbers and parameters."""
    rows = []
    for run in runs:
        m = manifest.get(run.name)
        if m is None:
            status, link, numbers, error = "not run", html.escape(run.name), "", ""
        else:
            status = m["status"]
            link = (
                f'<a href="{html.escape(m["html"])}">{html.escape(run.name)}</a>'
                if status == "ok" and m.get("html")
                else f'<a href="executed/{html.escape(run.name)}.ipynb">{html.escape(run.name)}</a>'
            )
            numbers = "<br>".join(
                f"{html.escape(str(k))}: <b>{html.escape(_fmt(v))}</b>"
                for k, v in m.get("key_numbers", {}).items()
            )
            error = html.escape(m.get("error") or "")
        params = "<br>".join(
            f"{html.escape(k)} = {html.escape(repr(v))}" for k, v in run.all_parameters().items()
        )
        rows.append(
            f'<tr class="{status.replace(" ", "-")}"><td>{link}</td>'
            f'<td class="status">{status}</td>'
            f"<td>{numbers}</td><td><code>{params}</code></td><td>{error}</td></tr>"
        )
    failed = sum(1 for r in runs if manifest.get(r.name, {}).get("status") == "failed")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return _INDEX.format(rows="\n".join(rows), n=len(runs), failed=failed, stamp=stamp)


def _fmt(v: object) -> str:
    if v is None:  # the notebook could not compute it (its note says why)
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CLM reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
tr.failed td.status {{ color: #b00020; font-weight: bold; }}
tr.ok td.status {{ color: #1b7f3b; }}
code {{ font-size: .85em; }}
</style></head>
<body>
<h1>Customer lifecycle reports</h1>
<p>{n} runs, {failed} failed. Index written {stamp}.</p>
<table>
<thead><tr><th>report</th><th>status</th><th>key numbers</th><th>parameters</th>
<th>error</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
