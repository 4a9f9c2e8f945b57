"""The report batch is safe to run: one writer per folder, nothing outlives a killed batch,
the config cannot inject code or paths, and the pages link only to the batch's own files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

from clmmodels import reports
from clmmodels.errors import ClmError
from clmmodels.reports import Run, index_html, load_config, run_reports

ROOT = Path(__file__).resolve().parents[1]
#: The pages run no script and load nothing from elsewhere.
POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'none'"
)

#: A batch in its own process, as `clm reports` runs it.
BATCH = (
    "import sys\n"
    "from clmmodels.reports import load_config, run_reports\n"
    "run_reports(load_config(sys.argv[1]), sys.argv[2], jobs=2, progress=False)\n"
)


def notebook(folder: Path, name: str, *cells: str, params: str = 'dataset = "x"') -> Path:
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell(params)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def sleeping_notebook(folder: Path) -> Path:
    """Records the pids of its kernel and worker in ``marker``, then sleeps ``seconds``."""
    return notebook(
        folder,
        "sleeper",
        "import os, pathlib\n"
        "pathlib.Path(marker, name + '.pids').write_text(f'{os.getpid()} {os.getppid()}')",
        "import time\ntime.sleep(seconds)",
        params='dataset = "x"\nname = ""\nmarker = ""\nseconds = 0.0',
    )


def write_config(folder: Path, runs: list[dict]) -> Path:
    cfg = folder / "reports.yml"
    cfg.write_text(yaml.safe_dump({"runs": runs}))
    return cfg


def sleeper_config(tmp_path: Path, names: list[str], seconds: float) -> tuple[Path, Path]:
    nb = str(sleeping_notebook(tmp_path))
    marker = tmp_path / "markers"
    marker.mkdir()
    runs = [
        {
            "name": n,
            "notebook": nb,
            "dataset": "x",
            "parameters": {"name": n, "marker": str(marker), "seconds": seconds},
        }
        for n in names
    ]
    return write_config(tmp_path, runs), marker


def start_batch(cfg: Path, out: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-c", BATCH, str(cfg), str(out)], stdout=f, stderr=f
        )


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the batch ended (exit {proc.returncode}) before {what}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _stat(pid: int) -> tuple[str, int] | None:
    """State and parent pid of ``pid``, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    s = _stat(pid)
    return s is not None and s[0] not in ("Z", "X")  # a zombie nobody reaps is dead too


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()[:120].replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (s := _stat(int(p.name))):
            children.setdefault(s[1], []).append(int(p.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


# 1. One batch at a time per output folder.


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_second_batch_into_the_same_folder_fails_at_once(tmp_path):
    cfg, marker = sleeper_config(tmp_path, ["a"], seconds=3)
    out = tmp_path / "out"
    first = start_batch(cfg, out, tmp_path / "first.log")
    try:
        wait_for(lambda: (marker / "a.pids").exists(), 120, "the first batch ran", first)
        start = time.monotonic()
        with pytest.raises(
            ClmError, match=rf"another `clm reports` is writing here \(pid {first.pid}\)"
        ):
            run_reports(load_config(cfg), out, progress=False)
        assert time.monotonic() - start < 5
        r = subprocess.run(
            [sys.executable, "-m", "clmmodels.cli", "reports",
             "--config", str(cfg), "--out", str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert f"{out}/: another `clm reports` is writing here (pid {first.pid}); wait" in r.stderr
        assert "Traceback" not in r.stderr + r.stdout
        assert first.poll() is None, "the second batch must not disturb the first"
        assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()
    finally:
        first.kill()
    # The first batch's manifest is whole, and the folder is free again.
    assert "a" in json.loads((out / "manifest.json").read_text())
    with reports._batch_lock(out):
        pass


# 2. Workers and kernels die with the batch; its temporaries do not outlive it.


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_batch_leaves_no_worker_kernel_or_late_report(tmp_path):
    seconds = 4
    cfg, marker = sleeper_config(tmp_path, ["a", "b"], seconds=seconds)
    out = tmp_path / "out"
    batch = start_batch(cfg, out, tmp_path / "batch.log")
    try:
        wait_for(
            lambda: all((marker / f"{n}.pids").exists() for n in "ab"), 120, "both kernels", batch
        )
        started = time.monotonic()
        pids = {int(p) for n in "ab" for p in (marker / f"{n}.pids").read_text().split()}
        family = descendants(batch.pid) | pids  # workers, kernels, the resource tracker
        assert len(family) >= 4
        batch.send_signal(signal.SIGKILL)
        batch.wait(timeout=10)
    finally:
        batch.kill()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.1)
    survivors = {p: cmdline(p) for p in family if alive(p)}
    for p in survivors:  # not to leave them running when this fails
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    assert not survivors, survivors
    # Had a worker survived, its report would appear once the sleep is over.
    time.sleep(max(0.0, started + seconds + 3 - time.monotonic()))
    assert not list(out.glob("*.html"))


def test_a_new_batch_removes_what_a_killed_one_left(tmp_path):
    out = tmp_path / "out"
    (out / "executed").mkdir(parents=True)
    stale = [
        out / ".index.html.tmp-k3j_9x2a.html",
        out / ".manifest.json.tmp-abcdefgh.json",
        out / ".old-run.html.tmp-0a1b2c3d.html",
        out / "executed" / ".old-run.tmp.ipynb",
    ]
    kept = [
        out / "notes.tmp",
        out / ".mine.tmp",
        out / "data.tmp.csv",
        out / "executed" / "old-run.ipynb",
        out / "executed" / "old-run.log",
    ]
    for p in stale + kept:
        p.write_text("x")
    cfg = write_config(
        tmp_path, [{"name": "q", "notebook": str(notebook(tmp_path, "q")), "dataset": "x"}]
    )
    (res,) = run_reports(load_config(cfg), out, progress=False)
    assert res.status == "ok"
    assert not [p for p in stale if p.exists()]
    assert all(p.exists() for p in kept)


def test_a_worker_that_dies_fails_its_run_and_leaves_no_temporary(tmp_path):
    dies = notebook(tmp_path, "dies", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    cfg = write_config(tmp_path, [{"name": "dies", "notebook": str(dies), "dataset": "x"}])
    out = tmp_path / "out"
    (res,) = run_reports(load_config(cfg), out, progress=False)
    assert res.status == "failed" and "terminated abruptly" in res.error
    assert not list(out.rglob("*.tmp*"))
    assert json.loads((out / "manifest.json").read_text())["dies"]["status"] == "failed"


def test_a_worker_dies_with_its_parent():
    """The initializer asks Linux to kill the worker with its parent, and exits at once when
    the parent is already gone (the signal would never come)."""
    if not sys.platform.startswith("linux"):
        reports._die_with_parent(os.getppid())  # a no-op elsewhere
        return
    code = (
        "import ctypes, os, sys\n"
        "from clmmodels import reports\n"
        "reports._die_with_parent(os.getppid())\n"
        "sig = ctypes.c_int()\n"
        "ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)\n"  # PR_GET_PDEATHSIG
        "print(sig.value)\n"
        "reports._die_with_parent(os.getppid() + 1)\n"  # as if the parent had died
        "print('still here')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == [str(int(signal.SIGKILL))], r.stderr
    assert r.returncode != 0


# 3. The config: clear errors, no code or paths injected.


def _cfg(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "bad.yml"
    cfg.write_text(text)
    notebook(tmp_path, "nb")
    return cfg


def one_run(name: str = "a", notebook: str = "nb.ipynb", dataset: str = "x", more: str = "") -> str:
    return f"runs:\n- name: {name}\n  notebook: {notebook}\n  dataset: {dataset}\n{more}"


def params(text: str) -> str:
    return one_run(more=f"  parameters:\n    {text}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a\n  notebook: nb.ipynb\n", r"the top level must be a mapping .*not a list"),
        ("just text\n", r"the top level must be a mapping .*not a string"),
        ("runs:\n  name: a\n", r"`runs` must be a list of runs, not a mapping"),
        ("runs:\n- just a name\n", r"run 1 must be a mapping .*not a string"),
        (one_run(more="  parameters:\n  - a: 1\n"), r"run 'a': `parameters` must be .*not a list"),
        (one_run(more="  parameters: 3\n"), r"run 'a': `parameters` must be .*not a number"),
        (one_run(notebook="[nb.ipynb]"), r"run 'a': `notebook` must be a path, not a list"),
        (one_run(dataset="{a: 1}"), r"run 'a': `dataset` must be a folder .*not a mapping"),
        (one_run("../up"), r"run '../up': the name must be a plain file name: no /"),
        (one_run("/tmp/abs"), r"run '/tmp/abs': the name must be a plain file name"),
        (one_run('"a\\\\b"'), r"run 'a\\\\b': the name must be a plain file name"),
        (one_run("a..b"), r"run 'a..b': the name must not contain '\.\.'"),
        (one_run(".hidden"), r"run '.hidden': the name must not start with a dot"),
        (one_run("C:x"), r"run 'C:x': the name must not start with a drive"),
        (one_run("''"), r"run 1: the name must not be empty"),
        (one_run('"a\\nb"'), r"run 'a\\nb': the name must not contain control characters"),
        (one_run("7"), r"run 1: the name must be a string, not a number"),
        (
            params('"x\\nimport os\\ny": 1'),
            r"run 'a': parameter name 'x\\nimport os\\ny' is not a Python identifier",
        ),
        (params("class: 1"), r"run 'a': parameter name 'class' is a Python keyword"),
        (params("1x: 1"), r"parameter name '1x' is not a Python identifier"),
        (params("3: 1"), r"parameter name 3 is not a Python identifier"),
        (params("on: 1"), r"parameter name True is not a Python identifier \(YAML reads on"),
        (params("x: !!binary aGk="), r"run 'a': parameter 'x': a bytes value cannot be passed"),
        (params("x: !!set {a}"), r"parameter 'x': a set value cannot be passed"),
        (params("x: [1, {k: !!set {a}}]"), r"parameter 'x': a set value cannot be passed"),
        ("runs:\n- !!python/object/apply:os.system [echo hi]\n", r"not valid YAML"),
    ],
)  # fmt: skip
def test_config_errors_are_clear(tmp_path, text, message):
    cfg = _cfg(tmp_path, text)
    with pytest.raises(ClmError, match=message) as err:
        load_config(cfg)
    assert str(err.value).startswith(f"{cfg}: ")


def test_config_accepts_plain_names_and_values(tmp_path):
    cfg = _cfg(
        tmp_path,
        "runs:\n- name: clv-cdnow_2024 (v2)\n  notebook: nb.ipynb\n  dataset: x\n"
        "  parameters: {calibration_end: 1997-09-30, n: 3, f: .5, flag: true, none: null,\n"
        "               xs: [a, 1], m: {k: v, 2: [x]}, match: 1}\n",
    )
    (run,) = load_config(cfg)
    assert run.name == "clv-cdnow_2024 (v2)" and run.parameters["match"] == 1


def test_the_cli_turns_a_bad_config_into_a_message(tmp_path):
    cfg = _cfg(tmp_path, "- a\n- b\n")
    r = subprocess.run(
        [sys.executable, "-m", "clmmodels.cli", "reports", "--config", str(cfg),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {cfg}: the top level must be a mapping")
    assert "Traceback" not in r.stderr + r.stdout


# 4. Links only to the batch's own reports.


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.hrefs += [v or "" for k, v in attrs if k in ("href", "xlink:href")]


def hrefs(page: str) -> list[str]:
    p = _Hrefs()
    p.feed(page)
    return p.hrefs


def assert_batch_links_only(page: str) -> None:
    """Every href is within the page or a file of a batch beside it, never another scheme,
    site or folder (a summary may link to another config's reports in the same folder)."""
    for href in hrefs(page):
        if href.startswith("#"):
            continue
        assert not urlsplit(href).scheme and not urlsplit(href).netloc, href
        assert re.fullmatch(r"(executed/)?[^/\\.][^/\\]*\.(html|ipynb)", unquote(href)), href
        assert ".." not in href, href


def test_the_index_links_only_to_files_of_the_batch(tmp_path):
    runs = [Run(n, tmp_path / "nb.ipynb", "x") for n in ("javascript:alert(1)", "ok", "bad")]
    manifest = {
        "javascript:alert(1)": {"status": "ok", "html": "javascript:alert(1).html"},
        "ok": {"status": "ok", "html": "javascript:alert(2)", "key_numbers": {"<b>": "<i>"}},
        "bad": {"status": "failed", "notebook": "x", "error": "<script>x</script>"},
    }
    page = index_html(runs, manifest)
    assert_batch_links_only(page)
    # A failed run links to its page, which shows the error, not to the notebook's JSON.
    files = {"javascript:alert(1).html", "ok.html", "failed-bad.html", "glossary.html"}
    assert sorted(unquote(h) for h in hrefs(page)) == sorted(files)
    assert "<script>x" not in page and "<i>" not in page and "&lt;b&gt;: <b>&lt;i&gt;</b>" in page
    # A month's index links up to the months index, and only there.
    month = index_html(runs, manifest, month="2024-12", warnings=["<img src=x>"], up=True)
    assert "../index.html" in hrefs(month) and "<img src=x>" not in month
    assert_batch_links_only(month.replace('href="../index.html"', 'href="index.html"'))


def test_a_failed_run_page_escapes_its_error_and_links_only_to_the_batch(tmp_path):
    """The page of a failed run shows config and error text as text, under the policy."""
    run = Run(
        "javascript:alert(1)", tmp_path / "nb.ipynb", "x",
        {"p": "<script>alert(2)</script>", "q": "[x](https://evil.example)"},
        notes=("<img src=x onerror=alert(3)>",),
    )  # fmt: skip
    executed = tmp_path / "executed.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("raise")
    cell.outputs = [
        nbformat.v4.new_output(
            "error", ename="E", evalue="x",
            traceback=["\x1b[0;31mE\x1b[0m: <a href='https://evil.example'>x</a>"],
        )
    ]  # fmt: skip
    nb.cells = [cell]
    nbformat.write(nb, executed)
    result = reports.RunResult(
        run.name, "failed", notebook=str(executed), error='<a href="javascript:x">e</a>'
    )
    page = reports.failed_html(run, result)
    assert_batch_links_only(page)
    assert sorted(unquote(h) for h in hrefs(page)) == ["index.html"]
    head = page.split("<body", 1)[0]
    assert f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">' in head
    for raw in ("<script>", "<img", '<a href="javascript', "<a href='https", "\x1b"):
        assert raw not in page, raw
    assert "&lt;a href=&#x27;https://evil.example&#x27;&gt;x&lt;/a&gt;" in page  # the traceback
    assert "E: " in page


def test_the_months_index_links_only_to_month_folders(tmp_path):
    for name in ("2024-12", "javascript:alert(1)", "..", "2024-06"):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "index.html").write_text("x")
    page = reports.months_index_html(tmp_path)
    assert hrefs(page) == ["2024-12/index.html", "2024-06/index.html"]
    assert f'content="{POLICY}"' in page.split("<body", 1)[0]


@pytest.mark.slow
def test_a_report_links_only_to_files_of_the_batch(tmp_path):
    """The summary's links come from its ``reports`` parameter: config text, not the batch."""
    summary = nbformat.read(ROOT / "notebooks" / "summary.ipynb", as_version=4)
    (links,) = [c.source for c in summary.cells if 'reports.split(",")' in c.source]
    nb = notebook(
        tmp_path,
        "links",
        "from IPython.display import Markdown, display",
        links,
        "display(Markdown('[in page](#top) [docs](https://example.com/x) '\n"
        "                 '[x](JaVaScRiPt:alert(3)) <img src=x onerror=alert(4)> '\n"
        "                 '<meta http-equiv=refresh content=\"0;url=https://evil.example\">'))",
        params='dataset = "x"\nreports = ""',
    )
    evil = "javascript:alert(1)//, https://evil.example/x, javascript:alert(2), other, sum"
    cfg = write_config(
        tmp_path,
        [
            {"name": "sum", "notebook": str(nb), "dataset": "x", "parameters": {"reports": evil}},
            {"name": "javascript:alert(2)", "notebook": str(nb), "dataset": "x"},
        ],
    )
    out = tmp_path / "out"
    results = run_reports(load_config(cfg), out, progress=False)
    assert {r.status for r in results} == {"ok"}
    page = (out / "sum.html").read_text()
    assert_batch_links_only(page)
    found = {unquote(h) for h in hrefs(page) if not h.startswith("#")}
    assert found == {"javascript:alert(2).html", "other.html", "sum.html", "index.html"}
    assert "#top" in hrefs(page)
    assert "javascript:alert(1)//" in page  # the text stays, as text
    assert not re.search(r"<meta[^>]*refresh", page, re.IGNORECASE)
    # No script runs at all: the inline handler above stays inert in a browser.
    head = page.split("<body", 1)[0]
    assert f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">' in head
    assert head.index("Content-Security-Policy") < page.index("onerror")
    index = (out / "index.html").read_text()
    assert_batch_links_only(index)
    assert f'content="{POLICY}"' in index.split("<body", 1)[0]


@pytest.mark.skipif(os.name == "nt", reason="Windows kernels keep TCP")
def test_batch_kernels_listen_on_private_unix_sockets_not_tcp_ports():
    """Two workers' TCP kernels could be handed the same free port (one died before replying
    to kernel_info in this suite); the batch's kernels use Unix sockets in a private folder,
    removed with the kernel."""
    from clmmodels.kernels import kernel_manager_class

    a, b = kernel_manager_class()(), kernel_manager_class()()
    assert a.transport == b.transport == "ipc"
    folder = Path(a.ip).parent
    assert folder.is_dir() and Path(b.ip).parent != folder
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and len(a.ip) < 100
    import asyncio

    for km in (a, b):
        asyncio.run(km.cleanup_resources())
    assert not folder.exists() and not Path(b.ip).parent.exists()


@pytest.mark.skipif(os.name == "nt", reason="Windows kernels keep TCP")
def test_a_killed_workers_socket_folder_goes_with_the_next_batch(tmp_path, monkeypatch):
    from clmmodels import kernels

    monkeypatch.setattr(kernels.tempfile, "gettempdir", lambda: str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = tmp_path / f"clm-kernel-{gone.stdout.strip()}-abc123"
    live = tmp_path / f"clm-kernel-{os.getpid()}-def456"
    for folder in (orphan, live):
        folder.mkdir()
        (folder / "k-1").touch()
    kernels._remove_orphans.__wrapped__()
    assert not orphan.exists() and live.exists()
