"""Load a dataset folder in the shape of the data contract into typed pandas DataFrames."""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import contract, duck
from .bundled import BUNDLED, bundled_tables
from .contract import TABLES
from .errors import ClmError, ContractError, MissingTableError, Violation
from .timeunits import as_day
from .vocabulary import DEFAULT_EVENT_STAGES, check_event_mapping, folder_event_mapping


@dataclass
class Dataset:
    """The tables of one company, typed and checked against the contract.

    Absent optional tables are ``None``; :meth:`require` turns an absence into a clear error
    naming the analysis that needed the table.
    """

    name: str
    transactions: pd.DataFrame | None = None
    customers: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    marketing_spend: pd.DataFrame | None = None
    surveys: pd.DataFrame | None = None
    #: Where each table came from (a file path, or a description for bundled data).
    sources: dict[str, str] = field(default_factory=dict)
    #: Event type -> stage mapping the events were checked against.
    event_stages: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_STAGES))
    #: Tables left in their files for an engine to read (``load_dataset(..., in_files=)``):
    #: table -> path. Their frames are None; :meth:`source` gives the path.
    files: dict[str, str] = field(default_factory=dict)
    #: The temporary folder of those files typed into Parquet, removed with the dataset.
    scratch: object = field(default=None, repr=False, compare=False)

    def table(self, name: str) -> pd.DataFrame | None:
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; tables are {', '.join(TABLES)}")
        return getattr(self, name)

    def require(self, name: str, analysis: str) -> pd.DataFrame:
        """The table ``name``, or a :class:`MissingTableError` naming ``analysis``."""
        df = self.table(name)
        if df is None and name in self.files:
            raise ClmError(
                f"{self.name}: {analysis} needs the {name} in memory, but they were left in "
                f"{self.sources.get(name, self.files[name])} for an engine to read; load the "
                "dataset whole"
            )
        if df is None:
            raise MissingTableError(name, analysis, self.name)
        return df

    def require_loaded(self, analysis: str) -> None:
        """A :class:`ClmError` naming ``analysis`` if any table was left in its file: an
        analysis that cuts or filters the frames would silently lose it."""
        if self.files:
            left = ", ".join(f"{t} ({self.sources.get(t, f)})" for t, f in self.files.items())
            raise ClmError(
                f"{self.name}: {analysis} needs every table in memory, but {left} were left "
                "in their files for an engine to read; load the dataset whole"
            )

    def source(self, name: str) -> pd.DataFrame | str | None:
        """What an engine reads for the table ``name``: its frame, else the file it was left
        in (:attr:`files`), else None (absent)."""
        df = self.table(name)
        return df if df is not None else self.files.get(name)

    def require_source(self, name: str, analysis: str) -> pd.DataFrame | str:
        """:meth:`source`, or the :class:`MissingTableError` of :meth:`require` naming
        ``analysis`` when the table is absent."""
        found = self.source(name)
        return self.require(name, analysis) if found is None else found

    def has(self, name: str) -> bool:
        """Whether the table is there, in memory or in its file."""
        return self.source(name) is not None

    @property
    def present(self) -> list[str]:
        return [t for t in TABLES if self.table(t) is not None]

    def for_channel(self, channel: str) -> Dataset:
        """The customers acquired through ``channel``, with their rows of every table and the
        channel's marketing spend (``customers.acquisition_channel`` decides)."""
        self.require_loaded(f"a report for channel {channel!r}")
        customers = self.require("customers", f"a report for channel {channel!r}")
        channels = sorted(customers["acquisition_channel"].unique())
        if channel not in channels:
            raise ClmError(
                f"{self.name}: no customers acquired through {channel!r}; "
                f"channels are {', '.join(channels)}"
            )
        keep = customers.loc[customers["acquisition_channel"] == channel, "customer_id"]
        tables = {}
        for name in ("transactions", "customers", "events", "surveys"):
            df = self.table(name)
            tables[name] = None if df is None else df[df["customer_id"].isin(keep)]
        spend = self.marketing_spend
        if spend is not None:
            tables["marketing_spend"] = spend[spend["channel"] == channel]
        return Dataset(
            name=f"{self.name} ({channel})",
            sources=self.sources,
            event_stages=self.event_stages,
            **tables,
        )


def rows_before(
    df: pd.DataFrame | None, at: pd.Timestamp, column: str = "timestamp"
) -> pd.DataFrame | None:
    """The rows of a table dated strictly before ``at`` (``None`` for an absent table): what
    an analysis as of ``at`` may read."""
    return None if df is None else df[df[column] < at]


def data_before(ds: Dataset, as_of: str | pd.Timestamp) -> Dataset:
    """``ds`` as it stood before ``as_of``: transactions, events, surveys and spend dated
    before it, and the customers acquired before it (or with a purchase before it).
    :func:`rows_left_out` counts what the cut leaves out."""
    at = as_day(as_of, "as_of")
    ds.require_loaded(f"the data before {at.date()}")
    tx = rows_before(ds.transactions, at)
    customers = ds.customers
    if customers is not None:
        bought = customers["customer_id"].isin(tx["customer_id"]) if tx is not None else False
        customers = customers[(customers["acquired_at"] < at) | bought]
    return Dataset(
        name=ds.name,
        transactions=tx,
        customers=customers,
        events=rows_before(ds.events, at),
        marketing_spend=rows_before(ds.marketing_spend, at, "date"),
        surveys=rows_before(ds.surveys, at),
        sources=ds.sources,
        event_stages=ds.event_stages,
    )


def rows_left_out(full: Dataset, cut: Dataset) -> dict[str, int]:
    """Rows of each table of ``full`` that ``cut`` (:func:`data_before`) leaves out, for the
    tables that lose any."""
    counts = {t: len(full.table(t)) - len(cut.table(t)) for t in full.present}
    return {t: n for t, n in counts.items() if n}


def _find_table_file(folder: Path, table: str) -> Path | None:
    found = [folder / f"{table}.{ext}" for ext in ("csv", "parquet")]
    found = [p for p in found if p.exists()]
    if len(found) > 1:
        raise ClmError(f"{folder}: both {table}.csv and {table}.parquet exist; keep one")
    return found[0] if found else None


def check_tables(
    sources: Mapping[str, pd.DataFrame | str | Path],
    name: str,
    event_stages: Mapping[str, str] | None = None,
) -> Dataset:
    """Check tables (frames, or CSV/Parquet files) against the contract and return the typed
    :class:`Dataset`: the same rules, in SQL, as every engine applies to files.

    Raises :class:`ContractError` with every violation of every table.
    """
    stages = check_event_mapping(event_stages or DEFAULT_EVENT_STAGES)
    violations: list[Violation] = []
    typed: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    labels = {}
    con = duck.connect()
    try:
        for table, source in sources.items():
            event_types = stages if table == "events" else None
            df, found, labels[table] = duck.read_checked(con, table, source, event_types)
            files[table] = f"{table} DataFrame" if isinstance(source, pd.DataFrame) else str(source)
            violations += found
            if df is not None:
                typed[table] = df
        violations += contract.check_cross_tables(typed, files, labels)
    finally:
        con.close()
    if violations:
        raise ContractError(violations, dataset=name)
    return Dataset(name=name, sources=files, event_stages=stages, **typed)


def load_dataset(
    path: str | Path,
    event_stages: Mapping[str, str] | None = None,
    tables: Collection[str] | None = None,
    in_files: Collection[str] = (),
) -> Dataset:
    """Load a dataset folder, or a bundled dataset by name (``cdnow``, ``cdnow_sample``).

    Parameters
    ----------
    path
        A folder holding ``transactions.csv`` (or ``.parquet``) and the optional tables, or
        the name of a bundled dataset.
    event_stages
        Your own mapping of event types to stages; by default the folder's own
        (``event_mapping.csv`` or ``.yml``, see :func:`~clmmodels.vocabulary.load_event_mapping`)
        if it has one, else the contract's vocabulary.
    tables
        Load only these tables (the others are None), say the small ones when an engine reads
        the large ones from their files; by default every table present.
    in_files
        Tables to leave in their files (say ``("transactions", "events")`` at a million
        customers): not loaded, their paths in :attr:`Dataset.files` for the analyses that run
        on an engine (:meth:`Dataset.source`). They are checked against the contract here
        (all but the uniqueness of ``order_id``, which ``clm validate`` checks), and a CSV
        is typed once into a temporary Parquet file, so that every later scan reads typed
        columns. A bundled dataset loads whole.

    Returns
    -------
    Dataset
        Typed tables. Raises :class:`ContractError` listing every violation.

    Examples
    --------
    >>> ds = load_dataset("cdnow_sample")
    >>> ds.transactions.columns.tolist()[:3]
    ['customer_id', 'timestamp', 'amount']
    """
    folder = Path(path)
    if not folder.exists() and str(path) in BUNDLED:
        return load_bundled(str(path))
    if not folder.is_dir():
        names = ", ".join(BUNDLED)
        raise ClmError(f"{path}: not a dataset folder (nor a bundled dataset: {names})")
    if event_stages is None:
        event_stages = folder_event_mapping(folder)
    wanted = TABLES if tables is None else [t for t in TABLES if t in tables]
    files = {t: f for t in wanted if (f := _find_table_file(folder, t)) is not None}
    if not files and tables is None:
        raise ClmError(
            f"{folder}: no contract tables found (expected transactions.csv or .parquet, "
            f"and optionally {', '.join(TABLES[1:])})"
        )
    left = {t: files.pop(t) for t in list(files) if t in in_files}
    ds = check_tables(files, name=str(folder), event_stages=event_stages)
    if left:
        ds.files, ds.scratch = _typed_files(left, ds.event_stages)
        ds.sources.update({t: str(p) for t, p in left.items()})
    return ds


def _typed_files(
    files: Mapping[str, Path], event_stages: Mapping[str, str]
) -> tuple[dict[str, str], tempfile.TemporaryDirectory | None]:
    """The tables left in their files, checked, and a CSV among them typed once into a
    temporary Parquet file (removed with the dataset): every later scan reads typed columns.
    Parquet stays where it is."""
    out: dict[str, str] = {}
    scratch = None
    for table, path in files.items():
        if path.suffix != ".csv":
            out[table] = str(path)
            continue
        if scratch is None:
            scratch = tempfile.TemporaryDirectory(prefix="clm-typed-")
        typed = Path(scratch.name) / f"{table}.parquet"
        event_types = event_stages if table == "events" else None
        duck.write_typed(table, path, typed, event_types)
        out[table] = str(typed)
    return out, scratch


def load_bundled(name: str) -> Dataset:
    """Load a bundled dataset by name (see :data:`~clmmodels.bundled.BUNDLED`), checked
    against the contract.

    Customer ids are CDNOW's own zero-padded ids; the sample keeps its 1..2357 sample id
    (``sample_id``), which the published summaries use.
    """
    if name not in BUNDLED:
        raise KeyError(f"no bundled dataset {name!r}; bundled: {', '.join(BUNDLED)}")
    ds = dataset_from_frames(name=name, **bundled_tables(name))
    ds.sources = {"transactions": f"lifetimes {BUNDLED[name]}"}
    return ds


def dataset_from_frames(
    name: str = "in-memory dataset",
    event_stages: Mapping[str, str] | None = None,
    **tables: pd.DataFrame | None,
) -> Dataset:
    """Check and type DataFrames you already hold, exactly as :func:`load_dataset` would."""
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}; tables are {', '.join(TABLES)}")
    frames = {t: df.reset_index(drop=True) for t, df in tables.items() if df is not None}
    return check_tables(frames, name=name, event_stages=event_stages)
