"""The report batch: run parameterised notebooks through papermill and render HTML.

A config (YAML) lists runs: a notebook, a dataset and parameters. Each run executes in its own
process; a success becomes one self-contained HTML file (code hidden, images embedded), a
failure keeps its executed notebook with the failing cell marked and does not stop the others.
A run whose notebook, parameters, data and package are unchanged since its last success is
skipped. Every file is written to a temporary name and renamed, so a killed batch never leaves
a half-written report that looks complete. One batch at a time writes to a folder, and its
workers and their kernels die with it.

A notebook that writes a file beside its report (a CSV for another system) is given a path in
the output folder: ``{out}`` in a text parameter is replaced by the folder's absolute path
when the run executes (``targets_csv: "{out}/customers-cdnow-targets.csv"``). Notebooks run
in the config's folder, not the output folder, which ``--out`` may put anywhere.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import hashlib
import html
import json
import keyword
import multiprocessing
import os
import re
import signal
import sys
import time
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PureWindowsPath
from urllib.parse import quote, unquote

import yaml

from .errors import ClmError
from .outputs import TEMPORARY_NAME, atomic_write_text
from .vocabulary import ACTIVE_WINDOW_DAYS

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
    #: Warnings about the run's dates (clmmodels.batch_dates), shown atop its report.
    notes: tuple[str, ...] = ()

    def all_parameters(self) -> dict:
        """The parameters as configured (``{out}`` unreplaced: the cache key and the index
        page do not depend on where the batch writes)."""
        return {"dataset": self.dataset, **self.parameters}


#: In a text parameter, stands for the batch's output folder (its absolute path).
OUT_PLACEHOLDER = "{out}"


def with_out_folder(value: object, out_dir: str | Path) -> object:
    """``value`` with :data:`OUT_PLACEHOLDER` in every text (in lists and mappings too)
    replaced by ``out_dir``'s absolute path; other values unchanged.

    Examples
    --------
    >>> with_out_folder({"csv": "{out}/t.csv", "n": 3}, "/srv/reports")
    {'csv': '/srv/reports/t.csv', 'n': 3}
    """
    if isinstance(value, str):
        return value.replace(OUT_PLACEHOLDER, str(Path(out_dir).absolute()))
    if isinstance(value, list):
        return [with_out_folder(v, out_dir) for v in value]
    if isinstance(value, dict):
        return {k: with_out_folder(v, out_dir) for k, v in value.items()}
    return value


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
    """Read a reports config. Relative notebook and dataset paths are relative to the config.

    Everything is checked here, before a kernel starts: a run's name becomes file names in the
    output folder, and papermill writes each parameter as ``name = value`` code into the
    notebook's parameters cell.
    """
    path = Path(path)
    if not path.exists():
        raise ClmError(f"{path}: no such reports config")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))  # safe: no !!python tags
    except yaml.YAMLError as err:
        raise ClmError(f"{path}: not valid YAML ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ClmError(f"{path}: cannot read it ({err})") from None
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise ClmError(
            f"{path}: the top level must be a mapping with a `runs` list, not a {_kind(cfg)}"
        )
    entries = cfg.get("runs") or []
    if not isinstance(entries, list):
        raise ClmError(f"{path}: `runs` must be a list of runs, not a {_kind(entries)}")
    base = path.resolve().parent
    runs = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ClmError(
                f"{path}: run {i} must be a mapping (name, notebook, dataset, parameters), "
                f"not a {_kind(entry)}"
            )
        missing = [k for k in ("name", "notebook", "dataset") if k not in entry]
        if missing:
            raise ClmError(f"{path}: run {i} lacks {', '.join(missing)}")
        name = entry["name"]
        named = isinstance(name, str) and name.strip()
        where = f"{path}: run {name!r}" if named else f"{path}: run {i}"
        if problem := _name_problem(name):
            raise ClmError(f"{where}: the name {problem}")
        if name.startswith(FAILED_PREFIX):
            raise ClmError(
                f"{where}: the name must not start with {FAILED_PREFIX!r} "
                f"(a failed run's page is {FAILED_PREFIX}NAME.html)"
            )
        if not isinstance(entry["notebook"], str):
            raise ClmError(f"{where}: `notebook` must be a path, not a {_kind(entry['notebook'])}")
        dataset = entry["dataset"]
        if not isinstance(dataset, str | int) or isinstance(dataset, bool):
            raise ClmError(
                f"{where}: `dataset` must be a folder or a bundled dataset's name, "
                f"not a {_kind(dataset)}"
            )
        notebook = base / entry["notebook"]
        if not notebook.exists():
            raise ClmError(f"{where}: notebook {notebook} does not exist")
        params = entry.get("parameters")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise ClmError(
                f"{where}: `parameters` must be a mapping of name: value, not a {_kind(params)}"
            )
        for key, value in params.items():
            _check_parameter(where, key, value)
        runs.append(Run(name, notebook, str(dataset), dict(params), cwd=base))
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ClmError(f"{path}: run names must be unique; repeated: {', '.join(dupes)}")
    if not runs:
        raise ClmError(f"{path}: no runs")
    return runs


def _kind(value: object) -> str:
    """The YAML word for ``value``'s type, for messages."""
    for kind, name in ((dict, "mapping"), (list, "list"), (str, "string"), (bool, "boolean")):
        if isinstance(value, kind):
            return name
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def _name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a run, or None: it becomes NAME.html and executed/NAME.ipynb
    in the output folder, so it must stay a plain, visible file name there."""
    if not isinstance(name, str):
        return f"must be a string, not a {_kind(name)}"
    if not name.strip():
        return "must not be empty"
    if "/" in name or "\\" in name:
        return "must be a plain file name: no / or \\ (it names NAME.html in the output folder)"
    if ".." in name:
        return "must not contain '..'"
    if name.startswith("."):
        return "must not start with a dot (the batch's own temporary files do)"
    if PureWindowsPath(name).drive:
        return "must not start with a drive (C:)"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return "must not contain control characters (a newline, a tab)"
    if len(name.encode("utf-8", "replace")) > 200:
        return "must be at most 200 bytes long (file names are limited)"
    return None


#: Parameter values papermill writes as literals. It writes any other type as ``"{value}"``
#: unescaped, so a ``!!binary`` or ``!!set`` value holding a quote would run as code.
_LITERALS = (str, int, float, bool, type(None), datetime.date)  # datetime is a date


def _check_parameter(where: str, name: object, value: object) -> None:
    # papermill writes `name = value` into the parameters cell: a name must be a plain target
    if isinstance(name, bool):
        raise ClmError(
            f"{where}: parameter name {name!r} is not a Python identifier "
            "(YAML reads on, off, yes and no as booleans: quote the name)"
        )
    if not isinstance(name, str) or not name.isidentifier():
        raise ClmError(
            f"{where}: parameter name {name!r} is not a Python identifier "
            "(letters, digits and _, not starting with a digit)"
        )
    if keyword.iskeyword(name):
        raise ClmError(f"{where}: parameter name {name!r} is a Python keyword")
    if (bad := _unsafe_part(value)) is not None:
        raise ClmError(
            f"{where}: parameter {name!r}: a {type(bad).__name__} value cannot be passed to a "
            "notebook; use a string, number, boolean, null, date, list or mapping"
        )


def _unsafe_part(value: object) -> object | None:
    """The first part of ``value`` (itself, an item, a key) that is not a literal, or None."""
    if isinstance(value, list):
        parts: Iterable = value
    elif isinstance(value, dict):
        parts = (p for kv in value.items() for p in kv)
    else:
        return None if isinstance(value, _LITERALS) else value
    return next((bad for p in parts if (bad := _unsafe_part(p)) is not None), None)


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
    h.update(json.dumps(list(run.notes)).encode())
    h.update(__version__.encode())
    h.update(code_fingerprint().encode())
    h.update(json.dumps(library_versions(), sort_keys=True).encode())
    data = run.cwd / run.dataset
    if data.is_dir():
        _hash_files(h, (p for p in data.iterdir() if p.is_file()))
    else:  # a bundled dataset: its files come with lifetimes, whose version is hashed above
        h.update(run.dataset.encode())
    return h.hexdigest()


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

    from .kernels import kernel_manager_class

    start = time.perf_counter()
    executed_dir = out_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    executed = executed_dir / f"{run.name}.ipynb"
    tmp = _tmp_notebook(executed_dir, run.name)
    result = RunResult(
        run.name, "ok", notebook=str(executed), parameters=run.all_parameters(), key=key
    )
    from .batch_dates import unknown_parameters

    try:
        unknown = unknown_parameters(run.notebook, run.all_parameters())
    except Exception as err:  # not a notebook papermill can read
        unknown = f"cannot read the notebook's parameters ({_short_error(err)})"
    if unknown:
        result.status, result.error, result.notebook = "failed", unknown[:500], None
        result.seconds = round(time.perf_counter() - start, 2)
        return result
    try:
        try:
            with _stderr_to(executed_dir / f"{run.name}.log"):  # the kernel's own chatter
                pm.execute_notebook(
                    str(run.notebook),
                    str(tmp),
                    parameters=with_out_folder(run.all_parameters(), out_dir),
                    cwd=str(run.cwd),
                    progress_bar=False,
                    log_output=False,
                    kernel_name="python3",
                    kernel_manager_class=kernel_manager_class(),
                )
        except Exception as err:  # the executed notebook marks the failing cell
            result.status = "failed"
            result.error = _short_error(err)
        if tmp.exists():
            os.replace(tmp, executed)
    finally:  # interrupted: no half-executed notebook stays behind
        tmp.unlink(missing_ok=True)
    if result.status == "ok":
        nb = nbformat.read(executed, as_version=4)
        result.key_numbers = _key_numbers(nb)
        page = out_dir / f"{run.name}.html"
        body = _with_notes(render_html(nb), run.notes)
        atomic_write_text(page, _with_policy(_batch_links_only(body)))
        result.html = page.name
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def _tmp_notebook(executed_dir: Path, name: str) -> Path:
    """Where papermill writes a run's notebook while it executes; renamed when it is done."""
    return executed_dir / f".{name}.tmp.ipynb"


#: The temporary files this module writes, by subfolder of the output folder: the pages' and
#: the manifest's (clmmodels.outputs names them) and _tmp_notebook's.
_TEMPORARY = {
    ".": TEMPORARY_NAME,
    "executed": re.compile(r"\..+\.tmp\.ipynb"),
}


def _remove_temporaries(out: Path) -> None:
    """Remove the batch's temporary files from ``out``; only under the folder's lock, when no
    other batch can be writing them."""
    for sub, pattern in _TEMPORARY.items():
        folder = out / sub
        for p in folder.iterdir() if folder.is_dir() else ():
            if pattern.fullmatch(p.name) and p.is_file():
                p.unlink(missing_ok=True)


LOCK = ".clm-reports.lock"


@contextlib.contextmanager
def _batch_lock(out: Path):
    """Hold ``out``'s lock while a batch writes there: two batches into one folder each
    rewrite the manifest from what they read at the start, and one's entries are lost.

    The kernel releases a flock when its holder dies, so a killed batch leaves no stale lock.
    The file stays: deleting it would let a third batch lock a new file beside a held one.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one batch per folder is then the user's care
        yield
        return
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by children
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise ClmError(
                f"{out}/: another `clm reports` is writing here (pid {holder}); "
                "wait for it or choose another --out"
            ) from None
        except OSError as err:  # a file system without locks
            raise ClmError(
                f"{out}/: cannot lock the folder ({err}); choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Have Linux SIGKILL this process when ``parent`` dies; a no-op elsewhere.

    A worker orphaned by a killed `clm reports` would finish its notebook, write its report
    after the batch is gone and then wait forever for more work. Its kernel needs nothing:
    jupyter_client passes it JPY_PARENT_PID, and ipykernel polls that parent every second and
    exits once it is gone. The signal follows the thread that started the worker; the pool
    starts workers from the thread that submits, which outlives the pool.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        if ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):  # no libc or no prctl in it
        return
    if os.getppid() != parent:  # it died before prctl: no signal will come
        os._exit(1)


def _init_worker(workers: int, parent: int) -> None:
    _die_with_parent(parent)
    _share_cores(workers)


def _href(file: str) -> str:
    """A file of the batch as an href: percent-encoded, so that a name like ``javascript:x``
    stays a relative path, then HTML-escaped."""
    return html.escape(quote(file))


class _LinkTags(HTMLParser):
    """The start tags of a page that link (href, xlink:href) or redirect (meta refresh)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[tuple[int, int], str, str, list, bool]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        refresh = tag == "meta" and any(
            k == "http-equiv" and (v or "").strip().lower() == "refresh" for k, v in attrs
        )
        if refresh or any(k in _LINK_ATTRS for k, _ in attrs):
            text = self.get_starttag_text() or ""
            self.found.append((self.getpos(), text, tag, attrs, refresh))


_LINK_ATTRS = ("href", "xlink:href")


def _batch_links_only(page: str, allow=None) -> str:
    """``page`` with only links within itself or to the batch's files; others made inert.

    Config text reaches the pages (the summary turns its ``reports`` parameter into links) and
    must never become a link to ``javascript:`` or to another site. A batch's files are
    index.html, NAME.html and executed/NAME.ipynb beside the page, NAME a valid run name: a
    summary may link to the reports of another config written to the same folder. A kept link
    is rewritten percent-encoded; a meta refresh is dropped.
    """
    parser = _LinkTags()
    parser.feed(page)
    parser.close()
    line_starts = [0, *(m.end() for m in re.finditer("\n", page))]
    pieces, done = [], 0
    for (line, col), text, tag, attrs, refresh in parser.found:
        start = line_starts[line - 1] + col
        if page[start : start + len(text)] != text:  # never seen; fail closed, not open
            raise ValueError(f"cannot place the link {text[:80]!r} in the page")
        kept = []
        for k, v in attrs:
            if k in _LINK_ATTRS:
                v = _batch_href(v or "", allow)
                if v is None:
                    continue
            kept.append(k if v is None else f'{k}="{html.escape(v)}"')
        slash = "/" if text.endswith("/>") else ""
        pieces += [page[done:start], "" if refresh else f"<{' '.join([tag, *kept])}{slash}>"]
        done = start + len(text)
    return "".join([*pieces, page[done:]])


def _batch_href(href: str, allow=None) -> str | None:
    """``href`` as a safe link within the page or to a file of the batch, or None.

    ``allow(target)`` may accept more targets, exact ones the batch writes itself (the month
    folders' index pages): never config text."""
    href = href.strip()
    if href.startswith("#"):
        return href
    target = unquote(href)
    if allow is not None and allow(target):
        return quote(target)
    if target.startswith("executed/") and target.endswith(".ipynb"):
        name = target[len("executed/") : -len(".ipynb")]
    elif target.endswith(".html"):
        name = target[: -len(".html")]  # index.html included
    else:
        return None
    return quote(target) if _name_problem(name) is None else None


#: The pages need no script and nothing from elsewhere (images are embedded), so none may run
#: or load: an inline handler in a notebook's Markdown output (config text can reach it) is
#: inert too. Navigation by link is not restricted; _batch_links_only limits the links.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'none'"
)
_POLICY_META = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'


def _with_policy(page: str) -> str:
    """``page`` with :data:`CONTENT_SECURITY_POLICY` first in its head (the template's head
    comes before any notebook output)."""
    head = re.search(r"<head(\s[^>]*)?>", page, re.IGNORECASE)
    if head is None:
        raise ValueError("the page has no <head> to put the content security policy in")
    return f"{page[: head.end()]}\n{_POLICY_META}{page[head.end() :]}"


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
    month: str | None = None,
    as_of: dict | None = None,
    warnings: list[str] | None = None,
    up: bool = False,
) -> list[RunResult]:
    """Run the batch and write ``index.html``; returns one result per selected run.

    Parameters
    ----------
    runs
        From :func:`load_config` (or :func:`clmmodels.batch_dates.plan_batch`).
    month, as_of, warnings, up
        For the index page: the month the batch is as of, each dataset's month, warnings to
        show, and whether a months index sits in the folder above (:func:`run_monthly`).
    only
        A run name or a glob (``data_quality-*``) selecting runs; the rest keep their state.
    force
        Run even what is unchanged since its last success.

    One batch at a time writes to ``out_dir``: another one raises :class:`ClmError` at once.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _batch_lock(out):
        _remove_temporaries(out)  # what a killed batch left; no other batch writes here now
        try:
            results = _run_batch(runs, out, jobs, only, force, progress)
            index = index_html(
                runs, _read_manifest(out), month=month, as_of=as_of, warnings=warnings, up=up
            )
            atomic_write_text(out / "index.html", index)
            return results
        finally:
            _remove_temporaries(out)  # what a failed or interrupted one would leave


def run_monthly(
    runs: list[Run],
    out_dir: str | Path = "reports",
    as_of: str | None = None,
    jobs: int = 2,
    only: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> tuple[list[RunResult], Path]:
    """Run the batch as of one month into ``out_dir/YYYY-MM/`` and write ``out_dir/index.html``
    linking every month's index, the latest first. Returns the results and the month's folder.

    The month is ``as_of`` (``YYYY-MM``), else the last complete month of the batch's data;
    every run's date parameters derive from it (:mod:`clmmodels.batch_dates`). Its range
    errors raise :class:`ClmError`; its warnings are :class:`~clmmodels.errors.ClmWarning`
    and are shown on the index and atop the reports concerned.
    """
    import warnings as _warnings

    from .batch_dates import plan_batch
    from .errors import ClmWarning

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _batch_lock(out):
        _remove_temporaries(out)
        selected = [r.name for r in runs if only is None or fnmatch.fnmatch(r.name, only)]
        if not selected:
            raise ClmError(
                f"--only {only!r} matches no run; runs: {', '.join(r.name for r in runs)}"
            )
        plan = plan_batch(runs, as_of, checked=selected)
        notes = [n for r in plan.runs if r.name in selected for n in r.notes]
        for w in dict.fromkeys([*plan.warnings, *notes]):  # each once
            _warnings.warn(w, ClmWarning, stacklevel=2)
        month_dir = out / str(plan.month)
        results = run_reports(
            plan.runs, month_dir, jobs=jobs, only=only, force=force, progress=progress,
            month=str(plan.month), as_of={d: str(m) for d, m in plan.as_of.items()},
            warnings=plan.warnings, up=True,
        )  # fmt: skip
        atomic_write_text(out / "index.html", months_index_html(out))
    return results, month_dir


_MONTH_FOLDER = re.compile(r"\d{4}-\d{2}")


def months_index_html(out: str | Path) -> str:
    """The top index: a row per month folder of ``out`` that holds an index, latest first."""
    out = Path(out)
    rows = []
    folders = [p for p in out.iterdir() if _MONTH_FOLDER.fullmatch(p.name) and p.is_dir()]
    for folder in sorted(folders, key=lambda p: p.name, reverse=True):
        if not (folder / "index.html").is_file():
            continue
        try:
            manifest = _read_manifest(folder)
        except (OSError, ValueError):
            manifest = {}
        failed = sum(1 for m in manifest.values() if m.get("status") == "failed")
        written = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime((folder / "index.html").stat().st_mtime)
        )
        rows.append(
            f'<tr class="{"failed" if failed else "ok"}"><td><a href="{folder.name}/index.html">'
            f'{folder.name}</a></td><td>{len(manifest)}</td><td class="status">{failed}</td>'
            f"<td>{written}</td></tr>"
        )
    page = _MONTHS.format(
        rows="\n".join(rows),
        stamp=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        policy=_POLICY_META,
        style=_STYLE,
    )
    return _batch_links_only(page, lambda t: re.fullmatch(r"\d{4}-\d{2}/index\.html", t))


def _run_batch(
    runs: list[Run], out: Path, jobs: int, only: str | None, force: bool, progress: bool
) -> list[RunResult]:
    from tqdm.auto import tqdm

    manifest_path = out / MANIFEST
    manifest = _read_manifest(out)
    selected = [r for r in runs if only is None or fnmatch.fnmatch(r.name, only)]
    if not selected:
        raise ClmError(f"--only {only!r} matches no run; runs: {', '.join(r.name for r in runs)}")

    results: list[RunResult] = []
    todo: list[tuple[Run, str]] = []
    for run in selected:
        key = run_key(run)
        prev = manifest.get(run.name)
        page = f"{run.name}.html"  # the batch's own name for it, not the manifest's
        if (
            not force
            and prev
            and prev.get("status") == "ok"
            and prev.get("key") == key
            and (out / page).is_file()
        ):
            results.append(RunResult(**{**prev, "status": "unchanged", "html": page}))
        else:
            todo.append((run, key))

    bar = tqdm(total=len(todo), desc="reports", unit="run", disable=not progress or not todo)
    if todo:
        workers = max(1, min(jobs, len(todo)))
        # Workers start fresh ("spawn"), never as forks of this process: a fork copies the
        # locks of the threads DuckDB, Arrow and OpenMP have started here, and the child can
        # crash or hang on them (a segfault seen in a worker after an Arrow string parse).
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(workers, os.getpid()),
            mp_context=multiprocessing.get_context("spawn"),
        ) as pool:  # fmt: skip
            try:
                futures = {pool.submit(execute_run, run, out, key): (run, key) for run, key in todo}
                for fut in as_completed(futures):
                    try:
                        res = fut.result()
                    except Exception as err:  # its worker died (killed, out of memory) or raised
                        run, key = futures[fut]
                        res = RunResult(
                            run.name, "failed", error=_short_error(err),
                            parameters=run.all_parameters(), key=key,
                        )  # fmt: skip
                    results.append(res)
                    _write_failed_page(out, res, futures[fut][0])
                    bar.set_postfix_str(f"{res.name}: {res.status}")
                    bar.update()
                    manifest[res.name] = asdict(res)
                    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str))
            except BaseException:  # Ctrl-C: stop now, not after the queued runs
                _stop_workers(pool)
                raise
    bar.close()
    order = {r.name: i for i, r in enumerate(runs)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    for res in results:
        if res.status == "unchanged":
            manifest[res.name] = {**asdict(res), "status": "ok"}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str))
    atomic_write_text(out / GLOSSARY_PAGE, glossary_html())
    return results


def _read_manifest(out: Path) -> dict:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued runs and kill the running ones (their kernels follow them)."""
    pool.shutdown(wait=False, cancel_futures=True)
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()


#: What each notebook answers, for the index page (by the notebook's file name).
DESCRIPTIONS = {
    "summary": "Start here: the month's headline KPIs, what changed, and links to the "
    "detailed reports",
    "data_quality": "Data quality: is the data fit to use? Tables, contract checks, and what "
    "the models leave out",
    "clv": "Customer value: CLV per customer and its drivers, with the models' holdout check",
    "retention": "Retention: cohorts, monthly retention and lapsed rates, customer lifetimes",
    "stages": "Lifecycle stages: where customers stand each month and how they move",
    "churn": "Churn risk: who will probably make no purchase soon, and why",
    "customers": "Customers to act on: value at risk by stage and channel, and the target list",
    "channels": "Acquisition channels side by side: CAC, CLV:CAC, payback, retention, stage mix",
}

#: The prefix of a failed run's page: ``failed-NAME.html`` shows its error.
FAILED_PREFIX = "failed-"


def describe(run: Run) -> str:
    """One line on what ``run``'s report answers (empty for an unknown notebook)."""
    text = DESCRIPTIONS.get(Path(run.notebook).stem, "")
    channel = run.parameters.get("channel")
    if text and channel:
        text += f"; customers acquired through {channel}"
    return text


def _is_summary(run: Run) -> bool:
    return Path(run.notebook).stem == "summary"


def key_number_lines(run: Run, numbers: dict) -> list[tuple[str, str]]:
    """A run's key numbers as (label, value) for people: labels in words with their period,
    values by :mod:`clmmodels.present`'s rules (percentages, separators, dates)."""
    from . import glossary, present

    p = run.all_parameters()
    month = numbers.get("month") or p.get("month")
    data_end = numbers.get("data_end")
    days = p.get("active_window_days", ACTIVE_WINDOW_DAYS)
    days = f"{days:,}" if isinstance(days, int) else str(days)
    horizon = p.get("horizon_days", 90)
    months = p.get("horizon_months", 12)
    currency = p.get("currency")
    in_month = f" in {month}" if month else ""
    on_end = f" on {present.date(data_end)}" if data_end else ""
    try:
        lapsed = glossary.lapsed(int(p.get("active_window_days", ACTIVE_WINDOW_DAYS))).name
    except (TypeError, ValueError):
        lapsed = "lapsed"
    stem = Path(run.notebook).stem
    nps_period = in_month if stem == "summary" else " over the reporting window"

    def money(v):
        return present.money(v, currency, 0)

    def model(v):
        return present.HEADERS.get(str(v), str(v))

    def lifetime(v):
        return "not reached" if v == float("inf") else f"{present.integer(v)} days"

    rules = {
        "month": ("reporting month", str),
        "active_customers": (f"active customers (a purchase in {days} days){in_month}",
                             present.integer),
        "crr": (f"retention rate (CRR){in_month}", present.percent),
        "churn_rate": (f"{lapsed}{in_month}", present.percent),
        "cac": (f"CAC (blended){in_month}", money),
        "clv": (f"mean predicted CLV per active customer, next {months} months", money),
        "clv_to_cac": (
            f"CLV:CAC of the month's new customers{in_month}" if stem == "summary"
            else "CLV:CAC of all customers acquired while spending",
            lambda v: present.number(v, 1),
        ),
        "nps": (f"NPS{nps_period}", lambda v: present.number(v, 1)),
        "model": ("purchase model", model),
        "customers": ("customers", present.integer),
        "total_clv": (f"total predicted CLV, next {months} months", money),
        "mean_p_alive": (f"mean P(alive){on_end}", present.percent),
        "holdout_error_pct": ("holdout error of the forecast purchases", lambda v: f"{v:+.1f}%"),
        "valid": ("contract checks", lambda v: "passed" if v else "failed"),
        "violations": ("contract violations", present.integer),
        "transactions": ("transactions", present.integer),
        "tables": ("tables", present.integer),
        "month1_retention": ("buy again in the month after their first", present.percent),
        "last_crr": ("retention rate (CRR) in the last month", present.percent),
        "median_lifetime_days": ("median lifetime", lifetime),
        "periods": ("periods", present.integer),
        "churned_share": (
            ("in the churned stage" if numbers.get("method") != "latent"
             else "in the churned stage, expected by the latent stage model")
            + (f" in {str(data_end)[:7]}" if data_end else ""),
            present.percent,
        ),
        "method": ("stage model", lambda v: {"latent": "latent (silence is missing evidence)",
                                             "observed": "observed rule"}.get(v, str(v))),
        "periods_to_churn_from_retention": ("expected periods from retention to churned",
                                            lambda v: present.number(v, 1)),
        "customers_scored": ("customers scored", present.integer),
        "high_risk": (f"high risk of no purchase in the next {horizon} days", present.integer),
        "best_model": ("best churn model", model),
        "roc_auc": ("ROC-AUC of the best model (backtest)", lambda v: present.number(v, 3)),
        "bgnbd_roc_auc": ("ROC-AUC of BG/NBD (backtest)", lambda v: present.number(v, 3)),
        "as_of": ("as of", present.date),
        "clv_total": (f"total predicted CLV, next {months} months", money),
        "value_at_risk": ("value at risk", money),
        "value_at_risk_share": ("share of CLV at risk", present.percent),
        "targeted": ("customers with an action", present.integer),
        "top_action": ("action with the most value at risk", str),
        "targets_file": ("target list", str),
        "data_end": ("data up to", present.date),
    }  # fmt: skip
    lines = []
    order = list(rules)
    for k, v in sorted(
        numbers.items(),
        key=lambda kv: (kv[0] not in rules, order.index(kv[0]) if kv[0] in rules else 0),
    ):
        if k == "month" and stem == "summary":
            continue  # in every label instead
        label, fmt = rules.get(k, (present.header(k), present.cell))
        if v is None:  # the notebook could not compute it (its note says why)
            text = "n/a"
        else:
            try:
                text = fmt(v)
            except (TypeError, ValueError):
                text = present.cell(v)
        lines.append((label, text))
    return lines


def _run_link(run: Run, m: dict | None) -> tuple[str, str]:
    """The run's status and its name, linked to its page: the report, or the failed page."""
    if m is None:
        return "not run", html.escape(run.name)
    status = str(m.get("status"))
    # hrefs are the batch's own file names, never text from the manifest or config
    target = (
        f"{run.name}.html"
        if status == "ok" and m.get("html")
        else f"{FAILED_PREFIX}{run.name}.html"
        if status == "failed"
        else None
    )
    name = html.escape(run.name)
    return status, (f'<a href="{_href(target)}">{name}</a>' if target else name)


def settings_html(parameters: dict) -> str:
    """A run's parameters for the index, folded away (the reader who wants them opens them):
    one per line, names in words, texts without quotes and a file in the output folder by its
    name (``{out}/t.csv`` is ``t.csv (beside this page)``).

    >>> settings_html({"n_boot": 50, "targets_csv": "{out}/t.csv"}).split("<br>")[1]
    'targets csv: t.csv (beside this page)</details>'
    """
    lines = []
    for key, value in parameters.items():
        if isinstance(value, str) and value.startswith(OUT_PLACEHOLDER + "/"):
            text = f"{value[len(OUT_PLACEHOLDER) + 1 :]} (beside this page)"
        else:
            text = value if isinstance(value, str) else repr(value)
        lines.append(f"{html.escape(key.replace('_', ' '))}: {html.escape(str(text))}")
    label = f"{len(lines)} setting{'s' if len(lines) != 1 else ''}"
    return f"<details><summary>{label}</summary>{'<br>'.join(lines)}</details>"


def _group_rows(runs: list[Run], manifest: dict, page_warnings: list[str]) -> list[str]:
    rows = []
    for run in sorted(runs, key=lambda r: not _is_summary(r)):  # stable: start here first
        shown = [n for n in run.notes if n not in page_warnings]
        m = manifest.get(run.name)
        status, link = _run_link(run, m)
        numbers = "<br>".join(
            f"{html.escape(label)}: <b>{html.escape(text)}</b>"
            for label, text in key_number_lines(run, (m or {}).get("key_numbers") or {})
        )
        error = html.escape((m or {}).get("error") or "")
        params = settings_html(run.all_parameters())
        start = '<span class="start">start here</span> ' if _is_summary(run) else ""
        notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in shown)
        status = html.escape(status)
        rows.append(
            f'<tr class="{status.replace(" ", "-")}"><td>{start}{link}</td>'
            f"<td>{html.escape(describe(run))}{notes}</td>"
            f'<td class="status">{status}</td>'
            f"<td>{numbers}</td><td>{params}</td><td>{error}</td></tr>"
        )
    return rows


def index_html(
    runs: list[Run],
    manifest: dict,
    month: str | None = None,
    as_of: dict | None = None,
    warnings: list[str] | None = None,
    up: bool = False,
) -> str:
    """The batch's index page: the runs grouped by dataset, the summary first ("start
    here"), each with what it answers, its status, key numbers and parameters.

    ``month``, ``as_of`` (each dataset's month), ``warnings`` and ``up`` (a months index in
    the folder above) come from :func:`run_monthly`."""
    from .batch_dates import dataset_label

    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.dataset, []).append(run)
    sections = []
    for dataset, members in groups.items():
        label = html.escape(dataset_label(dataset))
        since = (as_of or {}).get(dataset)
        asof = f' <span class="asof">as of {html.escape(str(since))}</span>' if since else ""
        shown = "" if label == html.escape(dataset) else f" ({html.escape(dataset)})"
        sections.append(
            f'<h2>{label}{asof}</h2>\n<p class="dataset">Dataset {label}{shown}.</p>\n'
            f"<table>\n<thead><tr><th>report</th><th>what it answers</th><th>status</th>"
            f"<th>key numbers</th><th>settings</th><th>error</th></tr></thead>\n<tbody>\n"
            + "\n".join(_group_rows(members, manifest, warnings or []))
            + "\n</tbody></table>"
        )
    failed = sum(1 for r in runs if manifest.get(r.name, {}).get("status") == "failed")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    shown_warnings = "".join(
        f'<p class="warning"><b>Warning:</b> {html.escape(w)}</p>\n' for w in warnings or []
    )
    page = _INDEX.format(
        title=f"Customer lifecycle reports, {html.escape(month)}"
        if month
        else "Customer lifecycle reports",
        up=' <a href="../index.html">All months</a>.' if up else "",
        warnings=shown_warnings,
        sections="\n".join(sections),
        n=len(runs),
        failed=failed,
        stamp=stamp,
        policy=_POLICY_META,
        style=_STYLE,
    )
    # a Run made by hand may have any name
    return _batch_links_only(page, (lambda t: t == "../index.html") if up else None)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failing_cell_output(notebook: str | Path | None) -> str:
    """The error output (the traceback, colour codes removed) of an executed notebook's
    failing cell, or an empty text."""
    import nbformat

    if not notebook or not Path(notebook).is_file():
        return ""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # a broken notebook has no traceback to show
        return ""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return _ANSI.sub("", "\n".join(out.get("traceback") or []))[-20000:]
    return ""


def failed_html(run: Run, result: RunResult) -> str:
    """The page of a failed run: its error, the failing cell's traceback and its parameters,
    all as escaped text, with the index page's policy and links."""
    trace = failing_cell_output(result.notebook)
    params = "\n".join(f"{k} = {v!r}" for k, v in run.all_parameters().items())
    executed = f"executed/{run.name}.ipynb"
    kept = (
        f"<p>The executed notebook, with the failing cell marked, is kept as "
        f"<code>{html.escape(executed)}</code> in this folder.</p>"
        if result.notebook
        else ""
    )
    page = _FAILED.format(
        name=html.escape(run.name),
        what=html.escape(describe(run) or Path(run.notebook).name),
        error=html.escape(result.error or "unknown error"),
        notes="".join(f'<p class="warning">{html.escape(n)}</p>' for n in run.notes),
        trace=(f"<h2>Where it failed</h2>\n<pre>{html.escape(trace)}</pre>" if trace else ""),
        kept=kept,
        params=html.escape(params),
        notebook=html.escape(Path(run.notebook).name),
        policy=_POLICY_META,
        style=_STYLE,
    )
    return _batch_links_only(page)


def _write_failed_page(out: Path, result: RunResult, run: Run) -> None:
    """Write a failed run's page; remove it once the run succeeds."""
    page = out / f"{FAILED_PREFIX}{run.name}.html"
    if result.status == "failed":
        atomic_write_text(page, failed_html(run, result))
    elif result.status == "ok":
        page.unlink(missing_ok=True)


def _with_notes(page: str, notes: Iterable[str]) -> str:
    """``page`` with a warning box per note first in its body."""
    notes = list(notes)
    body = re.search(r"<body(\s[^>]*)?>", page, re.IGNORECASE)
    if not notes or body is None:
        return page
    box = "".join(
        '<div class="clm-warning" role="alert" style="border:2px solid #b26a00;'
        "background:#fff4e0;padding:.6rem 1rem;margin:1rem 2rem;font-family:system-ui,"
        f'sans-serif"><b>Warning:</b> {html.escape(n)}</div>'
        for n in notes
    )
    return f"{page[: body.end()]}\n{box}{page[body.end() :]}"


#: The glossary page the batch writes beside the index.
GLOSSARY_PAGE = "glossary.html"


def glossary_html() -> str:
    """The glossary page: every term of :mod:`clmmodels.glossary` (the reports' defaults),
    with the index page's policy and style."""
    from .glossary import glossary

    rows = "\n".join(
        f"<tr><td><b>{html.escape(t.name)}</b></td><td>{html.escape(t.definition)}</td>"
        f"<td>{html.escape(t.period)}</td><td>{html.escape(t.reports)}</td></tr>"
        for t in glossary()
    )
    return _batch_links_only(_GLOSSARY.format(rows=rows, policy=_POLICY_META, style=_STYLE))


_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
tr.failed td.status { color: #b00020; font-weight: bold; }
tr.ok td.status { color: #1b7f3b; }
code { font-size: .85em; }
h2 { margin-top: 2rem; }
.asof { font-size: .7em; font-weight: normal; color: #555; }
.start { background: #1b7f3b; color: #fff; border-radius: .3rem; padding: 0 .4rem;
  font-size: .8em; white-space: nowrap; }
.warning, .note { border-left: 4px solid #b26a00; background: #fff4e0; padding: .3rem .6rem; }
.note { font-size: .85em; margin-top: .3rem; }
pre { background: #f6f6f6; padding: 1rem; overflow-x: auto; white-space: pre-wrap; }
</style>"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{policy}
<title>{title}</title>
{style}</head>
<body>
<h1>{title}</h1>
<p>{n} runs, {failed} failed. Index written {stamp}.{up}</p>
<p>Each dataset's reports are grouped under its name: begin with its summary
(<span class="start">start here</span>), which links the detailed reports. The
<a href="glossary.html">glossary</a> defines each measure of customers leaving (lapsed,
P(alive), predicted churn, the churned stage): its name, meaning and period.</p>
{warnings}{sections}
</body></html>
"""

_FAILED = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{policy}
<title>Failed: {name}</title>
{style}</head>
<body>
<h1>Failed: {name}</h1>
<p>{what} (notebook <code>{notebook}</code>). <a href="index.html">All reports</a>.</p>
{notes}<h2>Error</h2>
<pre>{error}</pre>
{trace}
{kept}
<h2>Parameters</h2>
<pre>{params}</pre>
</body></html>
"""

_MONTHS = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{policy}
<title>CLM reports by month</title>
{style}</head>
<body>
<h1>Customer lifecycle reports by month</h1>
<p>Each month's reports, as if the data ended at the end of that month; the latest first.
Index written {stamp}.</p>
<table>
<thead><tr><th>month</th><th>reports</th><th>failed</th><th>written</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""

_GLOSSARY = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{policy}
<title>CLM reports: glossary</title>
{style}</head>
<body>
<h1>Glossary: customers leaving</h1>
<p>The reports measure customers leaving in several ways, each answering another question
over another period, so their figures differ by design. Each has one name, used wherever it
is shown, and one definition. Periods are the reports' defaults; a report run with other
parameters states its own in its "how to read" box. <a href="index.html">All reports</a>.</p>
<table>
<thead><tr><th>name</th><th>definition</th><th>period</th><th>reports</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
