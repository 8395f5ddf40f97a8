"""Streamed CSV and JSON Lines exports of withdrawals and audit events.

On PostgreSQL the database does the work: ``COPY (SELECT ...) TO STDOUT`` formats every cell in
SQL and the bytes go to the response in pieces, so a million rows cost neither Python objects
nor memory. One backend formatting every row was the bound, so the COPY runs in ranges of keys
on two connections that read one snapshot, one range formatted while the one before it is
sent. SQLite (the demo, the SQLite test pass) takes a Python path that writes the same
bytes. Both read the rows through the same ORM query (the filter, joins and order), and the
formatting rules below are written twice, once per path, and tested against each other:

- text as is, NULL as an empty cell (CSV) or ``null`` (JSON); in CSV a text cell starting with
  = + - @ tab or CR is prefixed with ``'`` so a spreadsheet never runs it as a formula (a UUID
  starts with a hex digit: never guarded);
- amounts as exact decimal strings without trailing zeros, never floats;
- times in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``;
- JSON data as PostgreSQL writes ``jsonb`` (keys shortest first, ``", "`` and ``": "``);
- CSV quoted as PostgreSQL's COPY quotes: only when needed, and an empty string as ``""``.
"""

from __future__ import annotations

import enum
import itertools
import json
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Max, Min, QuerySet
from psycopg import sql

from withdrawals.models import Approval, State

CHUNK = 5000
# Bytes per piece of the response: one piece per row made the server and client pay a chunk's
# overhead a million times; 64 KiB is still nothing to hold.
PIECE_BYTES = 64 * 1024
# Keys per COPY of a chunked export: 50,000 exported faster than 10,000, 25,000 or 100,000 (a
# statement's planning and the approvals' aggregate per chunk against how evenly the chunks
# share out), and a chunk of JSON lines is then about 32 MB. AHEAD_BYTES caps what the second
# connection's chunks may hold in memory waiting for the client: about a whole chunk, so
# neither connection idles.
CHUNK_KEYS = 50_000
AHEAD_BYTES = 32 * 1024 * 1024
# JSON lines per row of the export's COPY (see copy_sql).
LINES_PER_ROW = 256
# How the export's second connection shows in pg_stat_activity.
EXTRA_APPLICATION = "countersign export"
_CHUNK_END = object()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TIME_FORMAT_SQL = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
TIME_FORMAT_PY = "%Y-%m-%dT%H:%M:%S.%f+00:00"
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/x-ndjson; charset=utf-8"}
_COPY_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}


class Kind(enum.Enum):
    INT = "int"
    TEXT = "text"
    UUID = "uuid"
    IP = "ip"
    DECIMAL = "decimal"
    TIME = "time"
    JSON = "json"


@dataclass(frozen=True)
class Column:
    """One exported column: its header, how it is written, and where its value comes from (an
    ORM path; empty for the approval columns, which each path derives its own way)."""

    name: str
    kind: Kind
    source: str = ""

    @property
    def alias(self) -> str:
        # Prefixed: a bare alias may not shadow a model field in values().
        return f"c_{self.name}"


@dataclass(frozen=True)
class Dataset:
    name: str
    columns: tuple[Column, ...]

    @property
    def key(self) -> Column:
        return self.columns[0]


T, N, IP, D, TM, J = Kind.TEXT, Kind.INT, Kind.IP, Kind.DECIMAL, Kind.TIME, Kind.JSON
# Kinds whose SQL text never holds a character that JSON escapes: quoted as they are.
_UNESCAPED = frozenset({Kind.UUID, Kind.IP, Kind.DECIMAL, Kind.TIME})

WITHDRAWALS = Dataset(
    "withdrawals",
    (
        Column("id", N, "id"),
        Column("request_id", Kind.UUID, "request_id"),
        Column("requested_at", TM, "created_at"),
        Column("requested_by", T, "requested_by__username"),
        Column("venue", T, "venue__name"),
        Column("asset", T, "asset"),
        Column("network", T, "network"),
        Column("address", T, "address"),
        Column("memo", T, "memo"),
        Column("destination_label", T, "whitelisted_address__label"),
        Column("amount", D, "amount"),
        Column("fee_cap", D, "fee_cap"),
        Column("fee_charged", D, "fee_charged"),
        Column("state", T, "state"),
        Column("note", T, "note"),
        Column("reason", T, "reason"),
        Column("approvers", T),
        Column("approved_at", TM, "approved_at"),
        Column("submitted_at", TM, "submitted_at"),
        Column("completed_at", TM),
        Column("finished_at", TM, "finished_at"),
        Column("venue_reference", T, "venue_reference"),
        Column("txid", T, "venue_txid"),
        Column("payload_hash", T, "payload_hash"),
    ),
)
AUDIT = Dataset(
    "audit",
    (
        Column("seq", N, "seq"),
        Column("created_at", TM, "created_at"),
        Column("actor", T, "actor_name"),
        Column("ip", IP, "ip"),
        Column("action", T, "action"),
        Column("object_type", T, "object_type"),
        Column("object_id", T, "object_id"),
        Column("message", T, "message"),
        Column("data", J, "data"),
        Column("prev_hash", T, "prev_hash"),
        Column("hash", T, "hash"),
    ),
)
DATASETS = {d.name: d for d in (WITHDRAWALS, AUDIT)}
_APPROVAL_COLUMNS = ("approvers",)


class Export:
    """The bytes of an export whose rows were fixed, and counted, when it was opened.

    Iterate it once. ``close`` (the response calls it) ends the export's transaction and its
    connection, even when nothing was read: a client that is gone before the first byte must
    not leave a snapshot held open."""

    def __init__(
        self, *, rows: int, stream: Iterator[bytes], snapshot: Snapshot | None = None
    ) -> None:
        self.rows = rows
        self._stream = stream
        self._snapshot = snapshot

    def __iter__(self) -> Iterator[bytes]:
        return self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()
        if self._snapshot is not None:
            self._snapshot.close()


def export_open(*, dataset: Dataset, fmt: str, qs: QuerySet) -> Export:
    """The export of ``qs`` (already filtered), its rows counted at the moment they are read
    from: on PostgreSQL a snapshot taken now, which the COPY then reads, so what commits while
    the export's event is written (or while the file streams) changes neither the count nor the
    file. SQLite (the demo) counts and then reads."""
    if connection.vendor != "postgresql":
        return Export(rows=qs.count(), stream=python_stream(dataset=dataset, fmt=fmt, qs=qs))
    if connection.in_atomic_block:
        # The caller's transaction is the moment: what it wrote is visible to it alone.
        return Export(rows=qs.count(), stream=copy_stream(dataset=dataset, fmt=fmt, qs=qs))
    snapshot = Snapshot()
    try:
        rows = snapshot.count(qs)
    except BaseException:
        snapshot.close()
        raise
    stream = copy_stream(dataset=dataset, fmt=fmt, qs=qs, snapshot=snapshot)
    return Export(rows=rows, stream=stream, snapshot=snapshot)


def _source_values(dataset: Dataset, qs: QuerySet) -> QuerySet:
    """The raw values of every sourced column, in the export's order: the ORM owns the filter,
    the joins and the quoting of names for both paths."""
    sources = {c.alias: F(c.source) for c in dataset.columns if c.source}
    return qs.order_by(dataset.key.source).values(**sources)


# --- PostgreSQL: COPY ----------------------------------------------------------------------


def _sql_text(expr: str, fmt: str) -> str:
    if fmt != "csv":
        return expr
    # The first character's code compared as integers: left(...) IN ('=', ...) cut a string
    # and compared it under the collation six times, a fifth of the CSV export's time.
    starts = ", ".join(str(ord(c)) for c in FORMULA_STARTS)
    return f"CASE WHEN ascii({expr}) IN ({starts}) THEN '''' || {expr} ELSE {expr} END"


def _sql_cell(column: Column, fmt: str) -> str:
    expr = f"t.{column.alias}" if column.source else _derived_sql(column)
    match column.kind:
        case Kind.INT:
            return expr
        case Kind.TEXT:
            return _sql_text(f"({expr})::text", fmt)
        case Kind.UUID:
            return f"({expr})::text"
        case Kind.IP:
            return f"host({expr})"
        case Kind.DECIMAL:
            return f"trim_scale({expr})::text"
        case Kind.TIME:
            return f"to_char(({expr}) AT TIME ZONE 'UTC', '{TIME_FORMAT_SQL}')"
        case Kind.JSON:
            return expr if fmt == "json" else f"({expr})::text"


def _derived_sql(column: Column) -> str:
    if column.name == "completed_at":
        return f"CASE WHEN t.c_state = '{State.COMPLETED.value}' THEN t.c_finished_at END"
    return f"ap.{column.name}"


def _approvals_join(ids_sql: str) -> str:
    """Who approved and when (live approvals, in order): aggregated once for the approvals of
    the exported withdrawals (``ids_sql`` selects their ids with the export's own filter) and
    joined, which cost a fraction of one lookup per row. Selecting the ids again is cheaper
    than keeping the exported rows, every column wide, to read their ids back. The chunk's range
    of ids is bound (the two ``%s``) on the approvals themselves too: the planner does not carry
    it over from the ids, and every chunk read the approvals' index from its start. An ordered
    aggregate sorts every group, even a group of one, the usual case: a lone approval is taken
    as it is, and only a withdrawal with several goes back for them in order."""
    approval = connection.ops.quote_name(Approval._meta.db_table)
    user = connection.ops.quote_name(get_user_model()._meta.db_table)

    def line(a: str, u: str) -> str:
        when = f"to_char({a}.created_at AT TIME ZONE 'UTC', '{TIME_FORMAT_SQL}')"
        return f"{u}.username || ' ' || {when}"

    in_order = (
        f"(SELECT string_agg({line('a2', 'u2')}, '; ' ORDER BY a2.created_at, a2.id)"  # noqa: S608
        f" FROM {approval} a2 JOIN {user} u2 ON u2.id = a2.approver_id"
        " WHERE NOT a2.voided AND a2.withdrawal_id = a.withdrawal_id)"
    )
    return (
        " LEFT JOIN (SELECT a.withdrawal_id,"  # noqa: S608 (names from the models, values bound)
        f" CASE WHEN count(*) = 1 THEN min({line('a', 'u')}) ELSE {in_order} END AS approvers"
        f" FROM {approval} a JOIN {user} u ON u.id = a.approver_id"
        f" WHERE NOT a.voided AND a.withdrawal_id IN ({ids_sql})"
        " AND a.withdrawal_id >= %s AND a.withdrawal_id < %s"
        " GROUP BY a.withdrawal_id) ap ON ap.withdrawal_id = t.c_id"
    )


class CopyStatement(NamedTuple):
    sql: str
    params: tuple[Any, ...]
    # Each row is one bytea holding a run of whole lines (the JSON export), not one line.
    runs: bool = False


def copy_sql(*, dataset: Dataset, fmt: str, qs: QuerySet, keys: range) -> CopyStatement:
    """The COPY of the rows of ``qs`` whose key is in ``keys``, without a header: a chunked
    export writes its header once."""
    key = dataset.key.source
    qs = qs.filter(**{f"{key}__gte": keys.start, f"{key}__lt": keys.stop})
    inner, params = _source_values(dataset, qs).order_by().query.sql_with_params()
    cells = ", ".join(f"{_sql_cell(c, fmt)} AS {c.name}" for c in dataset.columns)
    select = f"SELECT {cells} FROM ({inner}) t"  # noqa: S608 (the ORM's query, bound)
    if any(c.name in _APPROVAL_COLUMNS for c in dataset.columns):
        ids_sql, ids_params = qs.order_by().values("pk").query.sql_with_params()
        select += _approvals_join(ids_sql)
        params = (*params, *ids_params, keys.start, keys.stop)
    select += f" ORDER BY t.{dataset.key.alias}"
    if fmt == "csv":
        return CopyStatement(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", params)
    # One JSON object per line, a run of whole lines per row of the COPY: libpq hands a COPY
    # over one row at a time, and at a line per row passing them on cost Python a quarter of
    # the JSON export's CPU. Binary, so the lines' bytes go as they are.
    lines = f"{_json_line(dataset)} || E'\\n'"
    run = f"l.k / {LINES_PER_ROW}"
    return CopyStatement(
        f"COPY (SELECT convert_to(string_agg(l.line, '' ORDER BY l.k), 'UTF8')"  # noqa: S608
        f" FROM (SELECT {lines} AS line, r.{dataset.key.name} AS k FROM ({select}) r) l"
        f" GROUP BY {run} ORDER BY {run}) TO STDOUT WITH (FORMAT binary)",
        params,
        runs=True,
    )


def _json_line(dataset: Dataset) -> str:
    """The line ``row_to_json`` writes, built by hand: row_to_json looked up every column's type
    on every row and cost more than the rest of the export. Each column's part, key included,
    is one short string, and one ``concat`` joins them: a chain of ``||`` copied the growing
    line again at every column, a tenth of the JSON export's time. Text goes through
    ``to_json`` only in a row that has something to escape: one ``to_json`` of all its text
    cells together says whether it has, since every escape starts with a backslash."""

    def line(*, escape: bool) -> str:
        parts = []
        for i, column in enumerate(dataset.columns):
            cell = f"r.{column.name}"
            key = ("{" if i == 0 else ",") + json.dumps(column.name) + ":"
            if column.kind in (Kind.INT, Kind.JSON):
                value = f"'{key}' || {cell}::text"
            elif column.kind in _UNESCAPED or not escape:
                value = f"'{key}\"' || {cell} || '\"'"
            else:
                value = f"'{key}' || to_json({cell})::text"
            parts.append(f"COALESCE({value}, '{key}null')")
        return "concat(" + ", ".join(parts) + ", '}')"

    texts = ", ".join(f"r.{c.name}" for c in dataset.columns if c.kind == Kind.TEXT)
    if not texts:
        return line(escape=False)
    clean = f"strpos(to_json(concat({texts}))::text, '\\') = 0"
    return f"CASE WHEN {clean} THEN {line(escape=False)} ELSE {line(escape=True)} END"


def _pieces(blocks: Iterable[bytes | memoryview]) -> Iterator[bytes]:
    piece = bytearray()
    for block in blocks:
        piece += block
        if len(piece) >= PIECE_BYTES:
            yield bytes(piece)
            piece.clear()
    if piece:
        yield bytes(piece)


def _csv_header(dataset: Dataset) -> str:
    return ",".join(c.name for c in dataset.columns) + "\n"


def _apply_copy_settings(cursor: psycopg.Cursor) -> None:
    # For the export's transaction (or savepoint) only: it ends by rolling back, which puts the
    # server's settings back. JIT compiling the formatting expressions cost seconds per export,
    # more than running them. A parallel plan ran the approvals' aggregate in full in every
    # worker and passed every formatted row through a queue: twice the CPU of one process.
    for name, value in _COPY_SETTINGS.items():
        cursor.execute(f"SET LOCAL {name} = {value}")


class Snapshot:
    """A read-only repeatable-read transaction on a connection of the export's own, the moment
    an export reads. It counts the rows, the request's connection imports its snapshot to read
    them, and it runs half the chunks itself."""

    def __init__(self) -> None:
        params = {**connection.get_connection_params(), "application_name": EXTRA_APPLICATION}
        self._connection = psycopg.connect(**params, autocommit=True)
        try:
            self.cursor = self._connection.cursor()
            self.cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _apply_copy_settings(self.cursor)
            (self.id,) = self.cursor.execute("SELECT pg_export_snapshot()").fetchone()
        except BaseException:
            self._connection.close()
            raise

    def count(self, qs: QuerySet) -> int:
        try:
            inner, params = qs.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # qs.none()
            return 0
        query = f"SELECT count(*) FROM ({inner}) AS selection"  # noqa: S608 (the ORM's, bound)
        (rows,) = self.cursor.execute(query, params).fetchone()
        return rows

    def close(self) -> None:
        # Closing ends its transaction too; a second close does nothing.
        self._connection.close()


@contextmanager
def _snapshot_cursors(snapshot: Snapshot | None = None) -> Iterator[list[psycopg.Cursor]]:
    """Cursors that all read the rows of one moment: ``snapshot``'s, or one taken now.

    The request's connection begins a read-only repeatable-read transaction and imports the
    snapshot, so the two connections can each run half the chunks. Inside a caller's
    transaction (a rolled-back test, a command's atomic block) what that transaction wrote is
    visible to it alone: the chunks then run on its connection, one after another, in a
    savepoint."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute("SAVEPOINT countersign_export")
            try:
                _apply_copy_settings(cursor)
                yield [cursor]
            finally:
                cursor.execute("ROLLBACK TO SAVEPOINT countersign_export")
                cursor.execute("RELEASE SAVEPOINT countersign_export")
            return
        held = snapshot or Snapshot()
        try:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                cursor.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(held.id)))
                _apply_copy_settings(cursor)
                yield [cursor, held.cursor]
            finally:
                cursor.execute("ROLLBACK")
        finally:
            held.close()


def _chunk_statements(
    *, dataset: Dataset, fmt: str, qs: QuerySet, width: int
) -> list[CopyStatement]:
    """One COPY per range of ``width`` keys, from the selection's smallest key to its largest
    (read in the export's snapshot), each range added to the filter so the approvals'
    aggregate is limited to it too."""
    key = dataset.key.source
    bounds = qs.aggregate(low=Min(key), high=Max(key))
    if bounds["low"] is None:
        return []
    return [
        copy_sql(dataset=dataset, fmt=fmt, qs=qs, keys=range(low, low + width))
        for low in range(bounds["low"], bounds["high"] + 1, width)
    ]


def _blocks(copy: psycopg.Copy, statement: CopyStatement) -> Iterator[bytes | memoryview]:
    if not statement.runs:
        return iter(copy)
    copy.set_types(["bytea"])
    return (row[0] for row in iter(copy.read_row, None))


def _copy_pieces(cursor: psycopg.Cursor, statement: CopyStatement) -> Iterator[bytes]:
    with cursor.copy(statement.sql, statement.params) as copy:
        yield from _pieces(_blocks(copy, statement))


class _Stopped(Exception):
    """The consumer has gone: the worker leaves its COPY, which cancels it on the server."""


class _Ahead:
    """A worker thread running chunks on the second connection into a bounded buffer, an end
    mark after each, an error in its place. It starts a chunk only once the consumer has begun
    to read its previous one, so at most two of its chunks, and never more than
    ``AHEAD_BYTES``, wait in memory."""

    def __init__(self, cursor: psycopg.Cursor, statements: list[CopyStatement]):
        self._buffer: queue.Queue = queue.Queue(maxsize=max(1, AHEAD_BYTES // PIECE_BYTES))
        self._turns = threading.Semaphore(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(cursor, statements), daemon=True)
        self._thread.start()

    def _wait(self, attempt: Callable[[], bool]) -> None:
        # In short waits, so a consumer that has gone is noticed.
        while not self._stop.is_set():
            if attempt():
                return
        raise _Stopped

    def _put(self, item: object) -> None:
        def attempt() -> bool:
            try:
                self._buffer.put(item, timeout=0.05)
            except queue.Full:
                return False
            return True

        self._wait(attempt)

    def _run(self, cursor: psycopg.Cursor, statements: list[CopyStatement]) -> None:
        try:
            for statement in statements:
                self._wait(lambda: self._turns.acquire(timeout=0.05))
                # _Stopped leaves the COPY block, and psycopg cancels what is left of it.
                with cursor.copy(statement.sql, statement.params) as copy:
                    for piece in _pieces(_blocks(copy, statement)):
                        self._put(piece)
                self._put(_CHUNK_END)
        except _Stopped:
            return
        except BaseException as exc:  # any error at all: the consumer raises it
            with suppress(_Stopped):
                self._put(exc)

    def chunk(self) -> Iterator[bytes]:
        """The worker's next chunk; reading it lets the worker start the one after."""
        self._turns.release()
        while (item := self._buffer.get()) is not _CHUNK_END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        # Wakes a worker waiting for room or a turn; one inside its COPY stops at its next
        # piece.
        self._stop.set()
        self._thread.join()


def _chunked_pieces(
    cursors: list[psycopg.Cursor], statements: list[CopyStatement]
) -> Iterator[bytes]:
    """The chunks in key order. With two cursors the request's streams the even chunks to the
    client while a worker thread runs the odd ones on the other: the next chunk is formatted
    while this one is sent."""
    here, *others = cursors
    if not others:
        for statement in statements:
            yield from _copy_pieces(here, statement)
        return
    ahead = _Ahead(others[0], statements[1::2])
    try:
        for index, statement in enumerate(statements[::2]):
            yield from _copy_pieces(here, statement)
            if 2 * index + 1 < len(statements):
                yield from ahead.chunk()
    finally:
        ahead.close()


def copy_stream(
    *,
    dataset: Dataset,
    fmt: str,
    qs: QuerySet,
    width: int = CHUNK_KEYS,
    snapshot: Snapshot | None = None,
) -> Iterator[bytes]:
    """The export through COPY, in chunks of ``width`` keys read from one snapshot: the one
    given (which it closes), or one taken when the first chunk is read."""
    if fmt == "csv":
        yield _csv_header(dataset).encode()
    with _snapshot_cursors(snapshot) as cursors:
        statements = _chunk_statements(dataset=dataset, fmt=fmt, qs=qs, width=width)
        yield from _chunked_pieces(cursors, statements)


# --- Python: the same bytes without COPY ----------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(TIME_FORMAT_PY) if value is not None else None


def _decimal(value: Decimal | None) -> str | None:
    return format(value.normalize(), "f") if value is not None else None


def jsonb_text(value: Any) -> str:
    """``value`` as PostgreSQL prints a jsonb: keys by length, then bytes."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
        return "{" + ", ".join(f"{_json_str(k)}: {jsonb_text(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    return _json_scalar(value)


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _json_str(str(value))


def _plain(column: Column, value: Any) -> Any:
    """The cell's value before CSV or JSON: text, an int, None, or (JSON kind) the parsed data."""
    if value is None:
        return None
    match column.kind:
        case Kind.INT | Kind.JSON:
            return value
        case Kind.DECIMAL:
            return _decimal(value)
        case Kind.TIME:
            return _time(value)
        case _:
            return str(value)


def _csv_cell(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if column.kind == Kind.JSON:
        text = jsonb_text(value)
    else:
        text = str(value)
        if column.kind == Kind.TEXT and text.startswith(FORMULA_STARTS):
            text = "'" + text
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _json_cell(column: Column, value: Any) -> str:
    if column.kind == Kind.JSON and value is not None:
        return jsonb_text(value)
    return _json_scalar(value)


def _approvals_by_withdrawal(ids: list[int]) -> dict[int, str]:
    live: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    rows = (
        Approval.objects.filter(withdrawal_id__in=ids, voided=False)
        .order_by("created_at", "id")
        .values_list("withdrawal_id", "approver__username", "created_at")
    )
    for withdrawal_id, username, at in rows:
        live[withdrawal_id].append((username, at))
    return {
        wid: "; ".join(f"{name} {_time(at)}" for name, at in approvals)
        for wid, approvals in live.items()
    }


def _python_rows(dataset: Dataset, qs: QuerySet) -> Iterator[list[Any]]:
    values = _source_values(dataset, qs).iterator(chunk_size=CHUNK)
    derives = any(c.name in _APPROVAL_COLUMNS for c in dataset.columns)
    for chunk in itertools.batched(values, CHUNK):
        approvals = _approvals_by_withdrawal([r["c_id"] for r in chunk]) if derives else {}
        for row in chunk:
            if derives:
                row["c_approvers"] = approvals.get(row["c_id"])
                completed = row["c_state"] == State.COMPLETED
                row["c_completed_at"] = row["c_finished_at"] if completed else None
            yield [_plain(c, row[c.alias]) for c in dataset.columns]


def python_stream(*, dataset: Dataset, fmt: str, qs: QuerySet) -> Iterator[bytes]:
    columns = dataset.columns
    if fmt == "csv":
        header = _csv_header(dataset)
        lines = (
            ",".join(_csv_cell(c, v) for c, v in zip(columns, row, strict=True)) + "\n"
            for row in _python_rows(dataset, qs)
        )
        return _pieces(line.encode() for line in itertools.chain([header], lines))
    names = [_json_str(c.name) for c in columns]
    records = (
        "{"
        + ",".join(f"{n}:{_json_cell(c, v)}" for n, c, v in zip(names, columns, row, strict=True))
        + "}\n"
        for row in _python_rows(dataset, qs)
    )
    return _pieces(record.encode() for record in records)
