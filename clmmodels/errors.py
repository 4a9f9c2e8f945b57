"""Error types. Every error a user can cause derives from :class:`ClmError`, so the CLI can
print it without a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field


class ClmError(Exception):
    """An error caused by the input or the parameters, with a message meant for the user."""


@dataclass(frozen=True)
class Violation:
    """One broken contract rule in one column of one file.

    ``rows`` holds the first offending row labels as the user sees them (``line 7`` in a CSV,
    ``row 6`` in Parquet), ``values`` the offending values for those rows and ``count`` how
    many rows break the rule in all.
    """

    file: str
    column: str | None
    rule: str
    count: int = 0
    rows: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: column '{self.column}'" if self.column else f"{self.file}"
        text = f"{where}: rule '{self.rule}'"
        if self.count:
            noun = "row" if self.count == 1 else "rows"
            shown = ", ".join(
                f"{r} ({v!r})" if v is not None else r
                for r, v in zip(self.rows, self.values or (None,) * len(self.rows), strict=True)
            )
            text += f" broken by {self.count} {noun}; first: {shown}"
        if self.detail:
            text += f" ({self.detail})"
        return text


@dataclass
class ContractError(ClmError):
    """A dataset breaks the data contract. Holds every violation found, not only the first."""

    violations: list[Violation] = field(default_factory=list)
    dataset: str = ""

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.dataset} breaks the data contract" if self.dataset else "Data contract"
        n = len(self.violations)
        lines = [f"{head} ({n} violation{'s' if n != 1 else ''}):"]
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)


class MissingTableError(ClmError):
    """An analysis needs a table that the dataset does not have."""

    def __init__(self, table: str, analysis: str, dataset: str = "") -> None:
        where = f" in {dataset}" if dataset else ""
        super().__init__(
            f"{analysis} needs the '{table}' table, which is absent{where} "
            f"(expected {table}.csv or {table}.parquet; see the data contract)."
        )
        self.table = table
        self.analysis = analysis


class ClmWarning(UserWarning):
    """Something about the data that the user should know, though the analysis could go on."""
