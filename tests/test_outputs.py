"""Outputs are written safely (#22): atomically, all or none, and checked before the work.

The CLI runs in-process here, so a test can make a writer fail midway (monkeypatch) or check
that the expensive analysis never started.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clmmodels import simulate_company

from .conftest import run_clm

ENGINES = ("pandas", "duckdb")  # pandas is the in-memory path (or DuckDB's old name)


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> str:
    """A small simulated company (300 customers): fast to score."""
    return str(simulate_company(n_customers=300, seed=5).write(tmp_path_factory.mktemp("co")))


def leftovers(folder: Path, *keep: str) -> list[str]:
    """Files in ``folder`` other than ``keep``: temporaries (ours, DuckDB's tmp_*) and debris."""
    return sorted(set(os.listdir(folder)) - set(keep))


def fail_midway(monkeypatch) -> None:
    """Every frame writer (pandas' to_csv and to_parquet, DuckDB's COPY) writes its file,
    then cuts it to half and raises: a full disk, or a kill, in the middle of the write."""

    def cut(path: str | Path) -> None:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])

    for name in ("to_csv", "to_parquet"):
        real = getattr(pd.DataFrame, name)

        def writer(self, path=None, *args, _real=real, **kwargs):
            result = _real(self, path, *args, **kwargs)
            if isinstance(path, str | Path):
                cut(path)
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            return result

        monkeypatch.setattr(pd.DataFrame, name, writer)

    class FailingCopy:
        """A DuckDB connection whose COPY ... TO fails after writing half of the file."""

        def __init__(self, con) -> None:
            self._con = con

        def __getattr__(self, name: str):
            return getattr(self._con, name)

        def execute(self, sql: str, *args):
            result = self._con.execute(sql, *args)
            if sql.lstrip().upper().startswith("COPY"):
                cut(re.findall(r"\) TO '((?:[^']|'')*)'", sql)[-1].replace("''", "'"))
                raise duckdb.IOException("No space left on device (simulated)")
            return result

    from clmmodels import engines

    real_init = engines.DuckDBEngine.__init__

    def init(self, *args, **kwargs) -> None:
        real_init(self, *args, **kwargs)
        self.con = FailingCopy(self.con)

    monkeypatch.setattr(engines.DuckDBEngine, "__init__", init)


class Spy:
    """Stands in for an expensive analysis; records whether it was called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise RuntimeError("the work started")


def spy_on_the_work(monkeypatch) -> Spy:
    """Replace every command's expensive step (the CLI imports them when it runs)."""
    import clmmodels.churn
    import clmmodels.clv.score
    import clmmodels.clv.stream
    import clmmodels.rfm
    import clmmodels.stages

    spy = Spy()
    for module, name in [
        (clmmodels.rfm, "rfm_summary"),
        (clmmodels.clv.stream, "score_to_file"),
        (clmmodels.clv.score, "score_customers"),
        (clmmodels.stages, "assign_stages"),
        (clmmodels.churn, "backtest"),
        (clmmodels.churn, "fit_churn_model"),
    ]:
        monkeypatch.setattr(module, name, spy)
    return spy


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A folder nobody can write in. Root ignores permission bits, so for root the folder is
    made immutable (chattr +i) where the filesystem allows; skipped where neither works."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if os.access(folder, os.W_OK) and shutil.which("chattr"):
        chattr = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        immutable = chattr.returncode == 0
    try:
        probe = folder / "probe"
        try:
            probe.write_text("")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("no read-only folder here (root, without chattr +i)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


# -- a write that fails midway leaves the earlier file, and no temporaries -------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_rfm_write_failing_midway_keeps_the_earlier_file(
    company, tmp_path, monkeypatch, capsys, engine
):
    out = tmp_path / "rfm.csv"
    args = ["rfm", company, "--engine", engine, "--out", str(out)]
    assert run_clm(monkeypatch, capsys, *args, "--observation-end", "2024-03-31")[0] == 0
    before = out.read_bytes()
    fail_midway(monkeypatch)
    code, err = run_clm(monkeypatch, capsys, *args, "--observation-end", "2024-06-30")
    assert out.read_bytes() == before
    assert leftovers(tmp_path, "rfm.csv") == []
    assert code == 2 and f"{out}: could not write it" in err and "Traceback" not in err, err


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_write_failing_midway_keeps_the_earlier_file_and_leaves_no_tmp(
    company, tmp_path, monkeypatch, capsys, engine, suffix
):
    """DuckDB's COPY (and pandas, for --engine pandas where it still is the in-memory path)."""
    out = tmp_path / f"scores{suffix}"
    out.write_bytes(b"the earlier scores\n")
    args = ["score", company, "--observation-end", "2024-06-30", "--engine", engine]
    fail_midway(monkeypatch)
    code, err = run_clm(monkeypatch, capsys, *args, "--out", str(out))
    assert out.read_bytes() == b"the earlier scores\n"
    assert leftovers(tmp_path, out.name) == []  # neither ours nor DuckDB's tmp_scores.csv
    assert code == 2 and f"{out}" in err and "Traceback" not in err, err


def test_churn_writes_all_its_outputs_or_none(company, tmp_path, monkeypatch, capsys):
    """The work succeeds and the last write fails: --out is not replaced either."""
    out, metrics = tmp_path / "churn.csv", tmp_path / "metrics.json"
    out.write_bytes(b"the earlier churn scores\n")
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".metrics.json") or self == metrics:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    code, err = run_clm(
        monkeypatch,
        capsys,
        *["churn", company, "--as-of", "2024-10-01", "--model", "logistic", "--snapshots", "1"],
        *["--out", str(out), "--metrics-out", str(metrics)],
    )
    assert out.read_bytes() == b"the earlier churn scores\n"
    assert leftovers(tmp_path, "churn.csv") == []
    assert code == 2 and "--metrics-out" in err and "Traceback" not in err, err


# -- bad targets fail at once, before the work ----------------------------------------------

COMMANDS = {
    "rfm": ["rfm", "{data}", "--observation-end", "2024-06-30"],
    "score": ["score", "{data}", "--observation-end", "2024-06-30"],
    "stages": ["stages", "{data}"],
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_read_only_folder_fails_before_the_work(
    company, read_only, monkeypatch, capsys, engine, command
):
    spy = spy_on_the_work(monkeypatch)
    args = [a.format(data=company) for a in COMMANDS[command]]
    out = read_only / "out.csv"
    code, err = run_clm(monkeypatch, capsys, *args, "--engine", engine, "--out", str(out))
    assert spy.calls == 0, "the work started"
    assert code == 2 and f"--out {out}: cannot write in {read_only}" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_folder_named_like_the_output_fails_before_the_work(
    company, tmp_path, monkeypatch, capsys, engine, command
):
    spy = spy_on_the_work(monkeypatch)
    (tmp_path / "x.csv").mkdir()
    args = [a.format(data=company) for a in COMMANDS[command]]
    out = str(tmp_path / "x.csv")
    code, err = run_clm(monkeypatch, capsys, *args, "--engine", engine, "--out", out)
    assert spy.calls == 0, "the work started"
    assert code == 2 and f"--out {out}: is a folder" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "extra",
    [
        ["--params-out", "{ro}/params.json"],
        ["--params-out", "{dir}"],  # an existing folder
    ],
)
def test_score_bad_params_out_fails_before_the_work(
    company, tmp_path, read_only, monkeypatch, capsys, extra
):
    spy = spy_on_the_work(monkeypatch)
    args = [a.format(ro=read_only, dir=tmp_path) for a in extra]
    out = tmp_path / "scores.csv"
    score = ["score", company, "--observation-end", "2024-06-30", "--out", str(out)]
    code, err = run_clm(monkeypatch, capsys, *score, *args)
    assert spy.calls == 0, "the work started"
    assert code == 2 and f"--params-out {args[1]}:" in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("bad", ["folder", "read-only"])
def test_churn_bad_metrics_out_writes_nothing(
    company, tmp_path, read_only, monkeypatch, capsys, bad
):
    spy = spy_on_the_work(monkeypatch)
    metrics = tmp_path / "m.json" if bad == "folder" else read_only / "m.json"
    if bad == "folder":
        metrics.mkdir()
    out = tmp_path / "churn.csv"
    code, err = run_clm(
        monkeypatch,
        capsys,
        *["churn", company, "--as-of", "2024-10-01", "--out", str(out)],
        *["--metrics-out", str(metrics)],
    )
    assert spy.calls == 0, "the work started"
    assert not out.exists()
    assert code == 2 and f"--metrics-out {metrics}:" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "args",
    [
        ["stages", "{data}", "--out", "{tmp}/m.csv", "--counts-out", "{tmp}/./m.csv"],
        ["churn", "{data}", "--as-of", "2024-10-01", "--out", "{tmp}/s.csv",
         "--metrics-out", "{tmp}/s.csv"],
        ["score", "{data}", "--observation-end", "2024-06-30", "--out", "{tmp}/s.csv",
         "--params-out", "{tmp}/s.csv"],
    ],
    ids=["stages", "churn", "score"],
)  # fmt: skip
def test_two_outputs_at_one_path_fail_before_the_work(company, tmp_path, monkeypatch, capsys, args):
    spy = spy_on_the_work(monkeypatch)
    args = [a.format(data=company, tmp=tmp_path) for a in args]
    code, err = run_clm(monkeypatch, capsys, *args)
    assert spy.calls == 0, "the work started"
    assert code == 2 and "are the same file" in err and "Traceback" not in err, err
    assert leftovers(tmp_path) == []


def test_unknown_suffix_fails_before_the_work(company, tmp_path, monkeypatch, capsys):
    spy = spy_on_the_work(monkeypatch)
    out = tmp_path / "m.xlsx"
    code, err = run_clm(monkeypatch, capsys, "stages", company, "--out", str(out))
    assert spy.calls == 0, "the work started"
    assert code == 2 and f"--out {out}: use a .csv or .parquet file name" in err, err


# -- the engines' writers, and the module itself ---------------------------------------------


def test_spark_write_failing_midway_keeps_the_earlier_folder(tmp_path):
    """Spark writes a folder of part files; a stand-in for its writer (no JVM needed) that
    overwrites like Spark, writes one part and fails."""
    from clmmodels.engines import SparkEngine

    class Writer:
        def __init__(self) -> None:
            self.write = self

        def mode(self, mode: str):
            return self

        def option(self, *args):
            return self

        def csv(self, path: str) -> None:
            shutil.rmtree(path, ignore_errors=True)  # mode("overwrite")
            Path(path).mkdir()
            (Path(path) / "part-00000.csv").write_text("customer_id\n")
            raise RuntimeError("executor lost (simulated)")

    class Session:
        def sql(self, sql: str) -> Writer:
            return Writer()

    out = tmp_path / "scores.csv"
    out.mkdir()
    (out / "part-00000.csv").write_text("the earlier scores\n")
    engine = object.__new__(SparkEngine)  # no session started
    engine.session = Session()
    with pytest.raises(RuntimeError, match="executor lost"):
        engine.write("SELECT 1", out)
    assert os.listdir(out) == ["part-00000.csv"]
    assert (out / "part-00000.csv").read_text() == "the earlier scores\n"
    assert leftovers(tmp_path, "scores.csv") == []


def test_atomic_path_replaces_a_folder_and_keeps_modes(tmp_path):
    from clmmodels.outputs import atomic_path, atomic_write_text, write_frame

    out = tmp_path / "parts"
    out.mkdir()
    (out / "old").write_text("old")
    with atomic_path(out, folder=True) as tmp:
        (tmp / "new").write_text("new")
    assert os.listdir(out) == ["new"] and leftovers(tmp_path, "parts") == []
    # A new file gets the umask's mode (not mkstemp's 0600); a replaced file keeps its own.
    umask = os.umask(0o022)
    try:
        text = atomic_write_text(tmp_path / "a" / "b.json", "{}")
        assert (text.stat().st_mode & 0o777) == 0o644
        text.chmod(0o640)
        atomic_write_text(text, "[]")
        assert (text.stat().st_mode & 0o777) == 0o640 and text.read_text() == "[]"
    finally:
        os.umask(umask)
    frame = pd.DataFrame({"clv": [1.5]}, index=pd.Index(["c1"], name="customer_id"))
    back = pd.read_parquet(write_frame(frame, tmp_path / "f.parquet"))
    assert back.columns.tolist() == ["customer_id", "clv"]


def test_check_writable_names_the_option_path_and_reason(tmp_path):
    from clmmodels.errors import ClmError
    from clmmodels.outputs import check_writable

    (tmp_path / "file.csv").write_text("")
    assert check_writable(tmp_path / "new" / "deeper" / "x.csv", "--out").name == "x.csv"
    assert not (tmp_path / "new").exists()  # checked, not created
    with pytest.raises(ClmError, match=r"--counts-out .*file.csv/x.csv: .*is a file, not a"):
        check_writable(tmp_path / "file.csv" / "x.csv", "--counts-out")
    with pytest.raises(ClmError, match=r"--out .*x.txt: use a .csv or .parquet file name"):
        check_writable(tmp_path / "x.txt", "--out")
    assert check_writable(tmp_path / "p.txt", "--params-out", suffixes=None).name == "p.txt"
    assert check_writable(tmp_path, "--out", suffixes=None, folder=True) == tmp_path
    assert leftovers(tmp_path, "file.csv") == []
