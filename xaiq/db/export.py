"""Streaming export of one job's rows to CSV, JSON Lines or Parquet in constant memory.

Rows are read through a streaming cursor (server-side on PostgreSQL) ``EXPORT_BATCH`` at a
time and written as they come: memory does not grow with the number of rows.

- ``csv``: a header line, then one line per row; NULL is the empty field; a text cell that a
  spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+1+cmd``, ``@SUM(1)``) starts
  with ``'`` (:func:`csv_text`).
- ``json``: JSON Lines — one object per line (streamable, appendable; ``jq -s`` makes an
  array), NULL is ``null``.
- ``parquet``: pyarrow ``ParquetWriter``, one row group per batch, typed columns; a
  sample's top-class probabilities (``probs``) are a real column,
  ``list<struct<class: int64, prob: float64>>``, not JSON text.

Result tables (disagreements, attacks, attributions) carry their sample's fields joined in
(:data:`xaiq.db.joined.SAMPLE_FIELDS`: key, label, pred, correct, confidence), so an
analysis needs no join.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import re
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, select
from sqlalchemy.sql.schema import Table

from xaiq.db.errors import QueryError
from xaiq.db.files import atomic_output
from xaiq.db.jobs import check_jobs
from xaiq.db.joined import joined_columns
from xaiq.db.models import (
    AttackResult,
    AttackStrategyResult,
    Attribution,
    Disagreement,
    Faithfulness,
    SampleErrorRow,
    SampleRow,
    SanityCheck,
)

EXPORT_BATCH = 10_000
EXPORT_TABLES: dict[str, Any] = {
    "disagreements": Disagreement,
    "attacks": AttackResult,
    "samples": SampleRow,
    "attributions": Attribution,
    "errors": SampleErrorRow,  # failed samples: key, stage, message, attempt
    "faithfulness": Faithfulness,
    "sanity": SanityCheck,
    # `--compare` attack jobs: one row per sample x strategy (each strategy's own attack)
    "attack_strategies": AttackStrategyResult,
}
EXPORT_FORMATS = ("csv", "json", "parquet")


def export_columns(what: str) -> list[str]:
    """Exported column names of ``what``: the table's columns without the surrogate ``id``,
    then (result tables) the joined sample fields."""
    return [c.name for c in _columns(what)]


def _columns(what: str) -> list[Any]:
    table = _table(what)
    if what == "samples":
        return [c for c in table.columns if c.name != "id"]
    return joined_columns(table)


def _table(what: str) -> Table:
    if what not in EXPORT_TABLES:
        raise QueryError(f"unknown export table {what!r}; known: {', '.join(EXPORT_TABLES)}")
    return EXPORT_TABLES[what].__table__


def export_job(engine: Engine, job_id: int, what: str, fmt: str, out: str | Path | IO[Any]) -> int:
    """Write job ``job_id``'s ``what`` rows (ordered by sample index) to ``out`` (a path, or
    an open stream: text for csv/json, binary for parquet; left open); return the row count.
    ``what``: one of :data:`EXPORT_TABLES`; ``fmt``: one of :data:`EXPORT_FORMATS`. Raises
    :class:`QueryError` / :class:`NotFoundError` first, before creating the file; a
    file path appears whole when done (:func:`~xaiq.db.files.atomic_output`).
    ``what="protocol"`` writes the job's protocol card instead
    (:func:`xaiq.db.protocol.export_protocol`) and returns its field count."""
    if what == "protocol":
        from xaiq.db.protocol import export_protocol

        if fmt not in EXPORT_FORMATS:
            raise QueryError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
        return export_protocol(engine, job_id, fmt, out)
    table = _table(what)
    if fmt not in EXPORT_FORMATS:
        raise QueryError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
    check_jobs(engine, [job_id])
    cols = _columns(what)
    order = [table.c.sample_index, table.c.id]
    stmt = select(*cols).where(table.c.job_id == job_id).order_by(*order)
    if what != "samples":
        stmt = stmt.outerjoin(
            SampleRow,
            (SampleRow.job_id == table.c.job_id) & (SampleRow.sample_index == table.c.sample_index),
        )
    sinks: dict[str, type[_Sink]] = {
        "csv": _CsvSink,
        "json": _JsonLinesSink,
        "parquet": _ParquetSink,
    }

    def write(target: Path | IO[Any]) -> int:
        count = 0
        writer = sinks[fmt](target, cols)
        try:
            with engine.connect() as conn:
                result = conn.execution_options(
                    stream_results=True, yield_per=EXPORT_BATCH
                ).execute(stmt)
                for batch in result.partitions():
                    writer.write([tuple(_plain(v) for v in row) for row in batch])
                    count += len(batch)
        finally:
            writer.close()
        return count

    if isinstance(out, str | Path):
        with atomic_output(out) as tmp:  # whole or nothing at ``out`` (a full disk, an error)
            return write(tmp)
    return write(out)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _open(target: Path | IO[Any], mode: str, **kwargs: Any) -> tuple[IO[Any], bool]:
    """The stream to write and whether this sink owns (closes) it."""
    if isinstance(target, Path):
        return target.open(mode, **kwargs), True
    return target, False


class _Sink(Protocol):
    def __init__(self, path: Path | IO[Any], cols: list[Any]) -> None: ...
    def write(self, rows: list[tuple]) -> None: ...
    def close(self) -> None: ...


class _CsvSink:
    def __init__(self, path: Path | IO[Any], cols: list[Any]) -> None:
        self._file, self._owned = _open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow([c.name for c in cols])

    def write(self, rows: list[tuple]) -> None:
        self._csv.writerows(["" if v is None else _csv_cell(v) for v in row] for row in rows)

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # shortest exact round-trip
    if isinstance(value, dict | list):
        return json.dumps(value)
    return csv_text(value)


# a text cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_text(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting with ``= + - @``, a tab or a
    carriage return gets a leading ``'`` (as OWASP recommends), unless the whole text is a
    plain number (``-0.5`` stays a number). Non-text values are returned as they are."""
    formula = isinstance(value, str) and value.startswith(_FORMULA_STARTS)
    return "'" + value if formula and not _NUMBER.fullmatch(value) else value


class _JsonLinesSink:
    def __init__(self, path: Path | IO[Any], cols: list[Any]) -> None:
        self._file, self._owned = _open(path, "w", encoding="utf-8")
        self._names = [c.name for c in cols]

    def write(self, rows: list[tuple]) -> None:
        names = self._names
        self._file.writelines(
            json.dumps(dict(zip(names, row, strict=True)), default=_json_default) + "\n"
            for row in rows
        )

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class _ParquetSink:
    def __init__(self, path: Path | IO[Any], cols: list[Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        fields: list[Any] = []
        self._json_cols: set[int] = set()
        self._probs_cols: set[int] = set()
        for c in cols:
            t = c.type
            if c.name == "probs":  # [[class, prob], ...] -> typed list of structs
                self._probs_cols.add(len(fields))
                at = pa.list_(pa.struct([("class", pa.int64()), ("prob", pa.float64())]))
            elif isinstance(t, Boolean):
                at = pa.bool_()
            elif isinstance(t, Integer):
                at = pa.int64()
            elif isinstance(t, Float):
                at = pa.float64()
            elif isinstance(t, DateTime):
                at = pa.timestamp("us")
            else:
                at = pa.string()
                if t.__class__.__name__ == "JSON":
                    self._json_cols.add(len(fields))
            fields.append(pa.field(c.name, at, nullable=True))
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(str(path) if isinstance(path, Path) else path, self._schema)

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        arrays = []
        for i, (col, field) in enumerate(zip(columns, self._schema, strict=True)):
            values: list[Any]
            if i in self._probs_cols:
                values = [
                    None if v is None else [{"class": int(c), "prob": float(p)} for c, p in v]
                    for v in col
                ]
            elif i in self._json_cols:
                values = [None if v is None else json.dumps(v) for v in col]
            else:
                values = list(col)
            arrays.append(self._pa.array(values, type=field.type))
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._writer.close()
