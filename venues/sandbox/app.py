"""The base of every venue sandbox: routing, state, fault injection and settlement over time.

A subclass declares its routes and renders answers in its venue's own envelope. The same object
serves the in-process httpx transport (:mod:`.transport`) and the loopback server (:mod:`.server`).

Faults are queued in the store, so a test can inject one from its own process into a sandbox
served by another (``runvenues``). A fault matches requests by method and by whole path
segments (see ``_path_matches``) and is consumed once (``times`` to repeat). Kinds:

``latency``               sleep ``seconds`` then answer normally
``timeout_before_accept`` never process; the caller times out
``timeout_after_accept``  process (state changes!), then the caller times out
``http_error``            answer HTTP ``status`` (5xx) in the venue's envelope without processing
``rate_limit``            the venue's own rate-limit answer, with ``retry_after``
``error``                 the venue's documented error ``error`` (a string the subclass renders)
``settle_failure``        the next withdrawal created settles as failed instead of succeeding

Modes: where a venue's documents are silent, a sandbox offers every plausible reading as a
named mode (``MODES``: name -> allowed values, the first being the default and the least
convenient one for a client). ``set_mode`` switches one for the whole sandbox, so a test can
run a client against each reading; each sandbox's docstring says where each mode comes from.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from .store import SandboxStore, StoreTx

FAULT_KINDS = frozenset(
    {
        "latency",
        "timeout_before_accept",
        "timeout_after_accept",
        "http_error",
        "rate_limit",
        "error",
        "settle_failure",
    }
)


@dataclass
class SandboxRequest:
    method: str
    target: str  # path with its query string, exactly as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def json(self) -> Any:
        return json.loads(self.body.decode() or "null")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class SandboxResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # Set by the ``timeout_*`` faults: the transport/server must make the caller time out.
    timeout: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None):
        return cls(
            status=status,
            body=json.dumps(data).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )


class SandboxError(Exception):
    """Raised inside a handler to answer with the venue's documented error."""

    def __init__(self, error: str, status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


Route = tuple[str, re.Pattern[str], Callable[..., SandboxResponse]]


def _path_matches(fault_path: str, path: str) -> bool:
    """Whole path segments only: "/0/private/Withdraw" must not catch ".../WithdrawInfo".

    The fault path may be a suffix (a prefix such as Nord-Pay's "/v1" is then ignored) or a
    leading part followed by more segments.
    """
    return path.endswith(fault_path) or f"{fault_path.rstrip('/')}/" in path


def now_ts() -> float:
    return time.time()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


class SandboxApp:
    """Subclasses set ``kind`` and ``routes`` and implement the ``render_*`` hooks."""

    kind: ClassVar[str]
    # Each documented error string of the venue -> the outcome the client must raise for it
    # ("VenueRejected", "VenueUnavailable" or "VenueOutcomeUnknown"). The conformance suite
    # injects every one of them, on the submit call.
    DOCUMENTED_ERRORS: ClassVar[dict[str, str]] = {}
    # Path substrings of the venue's calls, so tests can aim faults at one of them.
    QUOTE_PATH: ClassVar[str] = ""
    SUBMIT_PATH: ClassVar[str] = ""
    # Path of the history read reconciliation uses, and of the status read of one withdrawal
    # (the same path where the venue has no separate one), so tests can aim faults at them.
    HISTORY_PATH: ClassVar[str] = ""
    STATUS_PATH: ClassVar[str] = ""
    # Path of the login call, for venues that log in before anything else ("" if none).
    LOGIN_PATH: ClassVar[str] = ""
    # Undocumented behaviours: mode name -> its readings, the least convenient (default) first.
    MODES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, store: SandboxStore, *, settle_seconds: float = 0.0) -> None:
        self.store = store
        self.settle_seconds = settle_seconds
        self._routes: list[Route] = [
            (method, re.compile(f"^{pattern}$"), getattr(self, name))
            for method, pattern, name in self.route_table()
        ]

    # --- subclass hooks -------------------------------------------------------------------

    def route_table(self) -> list[tuple[str, str, str]]:
        """(method, path regex, handler method name). Named groups become keyword arguments."""
        raise NotImplementedError

    def seed(self, *, api_key: str = "", balance: Decimal = Decimal("10")) -> SandboxSeed:
        """Create a funded account with one saved address and return how to reach it."""
        raise NotImplementedError

    def render_error(self, error: str, status: int | None = None) -> SandboxResponse:
        """The venue's envelope for one of its documented errors."""
        raise NotImplementedError

    def render_rate_limit(self, retry_after: float) -> SandboxResponse:
        raise NotImplementedError

    def render_http_error(self, status: int) -> SandboxResponse:
        return self.render_error("Internal Server Error", status)

    def settle(self, withdrawal: dict[str, Any], *, failed: bool) -> None:
        """Move a withdrawal document to its final venue status (in place)."""
        raise NotImplementedError

    # --- modes ----------------------------------------------------------------------------

    def set_mode(self, name: str, value: str) -> None:
        """Switch the reading of one undocumented behaviour (see ``MODES``)."""
        if value not in self.MODES.get(name, ()):
            raise ValueError(f"{self.kind} has no mode {name}={value!r}")
        with self.store.tx() as tx:
            tx.put(self._c("modes"), name, {"value": value})

    def mode(self, name: str) -> str:
        with self.store.tx() as tx:
            return self.mode_in(tx, name)

    def mode_in(self, tx: StoreTx, name: str) -> str:
        """The current reading of ``name`` within an open store transaction."""
        doc = tx.get(self._c("modes"), name)
        return doc["value"] if doc else self.MODES[name][0]

    # --- accounts -------------------------------------------------------------------------

    def _c(self, collection: str) -> str:
        return f"{self.kind}:{collection}"

    def account_upsert(self, key: str, **data: Any) -> dict[str, Any]:
        """Create or update the account behind API key ``key`` (merging ``data``)."""
        with self.store.tx() as tx:
            account = tx.get(self._c("accounts"), key) or {"key": key, "balances": {}}
            account.update(data)
            tx.put(self._c("accounts"), key, account)
            return account

    def account(self, tx: StoreTx, key: str) -> dict[str, Any] | None:
        return tx.get(self._c("accounts"), key)

    def save_account(self, tx: StoreTx, account: dict[str, Any]) -> None:
        tx.put(self._c("accounts"), account["key"], account)

    # --- withdrawals ----------------------------------------------------------------------

    def new_withdrawal(self, tx: StoreTx, account_key: str, data: dict[str, Any]) -> dict[str, Any]:
        """Record a withdrawal that settles after ``settle_seconds`` (or fails, if so injected).

        ``data`` must hold ``id`` (the document key), ``reference`` (what the client gets back),
        ``asset``, ``amount_sent`` (the amount string exactly as received) and ``debited`` (what
        was taken from the balance, refunded if the withdrawal fails or is cancelled).
        """
        created = now_ts()
        settle = self.account(tx, account_key) or {}
        delay = float(settle.get("settle_seconds", self.settle_seconds))
        doc = {
            "seq": tx.next_id(self._c("withdrawal-seq")),
            "account": account_key,
            "created_at": created,
            "settle_at": created + delay,
            "fails": self._take_fault(tx, "settle_failure", "", "") is not None,
            "final": False,
            **data,
        }
        tx.put(self._c("withdrawals"), str(doc["id"]), doc)
        return doc

    def withdrawals(self, tx: StoreTx, account_key: str) -> list[dict[str, Any]]:
        """This account's withdrawals, settled up to now, oldest first."""
        docs = [w for w in tx.all(self._c("withdrawals")) if w["account"] == account_key]
        return [self._progress(tx, w) for w in docs]

    def withdrawal(self, tx: StoreTx, account_key: str, wid: str) -> dict[str, Any] | None:
        doc = tx.get(self._c("withdrawals"), wid)
        if doc is None or doc["account"] != account_key:
            return None
        return self._progress(tx, doc)

    def save_withdrawal(self, tx: StoreTx, doc: dict[str, Any]) -> None:
        tx.put(self._c("withdrawals"), str(doc["id"]), doc)

    def _progress(self, tx: StoreTx, doc: dict[str, Any]) -> dict[str, Any]:
        if not doc["final"] and now_ts() >= doc["settle_at"]:
            self.settle(doc, failed=doc["fails"])
            doc["final"] = True
            if doc["fails"]:
                self.refund(tx, doc)
            self.save_withdrawal(tx, doc)
        return doc

    def refund(self, tx: StoreTx, doc: dict[str, Any]) -> None:
        account = self.account(tx, doc["account"])
        if account is None or not doc.get("debited"):
            return
        balances = account["balances"]
        balances[doc["asset"]] = str(dec(balances.get(doc["asset"], "0")) + dec(doc["debited"]))
        self.save_account(tx, account)

    def count_withdrawals(self) -> int:
        """How many withdrawals the venue holds, over every account (tests count duplicates)."""
        with self.store.tx() as tx:
            return len(tx.all(self._c("withdrawals")))

    def all_withdrawals(self) -> list[dict[str, Any]]:
        with self.store.tx() as tx:
            return tx.all(self._c("withdrawals"))

    # --- faults ---------------------------------------------------------------------------

    def inject(self, kind: str, *, path: str = "", method: str = "", times: int = 1, **params: Any):
        """Queue a fault for the next ``times`` requests whose path contains ``path``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self.store.tx() as tx:
            fid = tx.next_id(self._c("fault-id"))
            tx.put(
                self._c("faults"),
                f"{fid:012d}",
                {"id": fid, "kind": kind, "path": path, "method": method.upper(), **params}
                | {"times": times},
            )

    def clear_faults(self) -> None:
        with self.store.tx() as tx:
            for fault in tx.all(self._c("faults")):
                tx.delete(self._c("faults"), f"{fault['id']:012d}")

    def _take_fault(self, tx: StoreTx, kind: str | None, method: str, path: str):
        for fault in tx.all(self._c("faults")):
            if kind is not None and fault["kind"] != kind:
                continue
            if kind is None and fault["kind"] == "settle_failure":
                continue
            if fault["method"] and fault["method"] != method:
                continue
            if fault["path"] and not _path_matches(fault["path"], path):
                continue
            key = f"{fault['id']:012d}"
            if fault["times"] <= 1:
                tx.delete(self._c("faults"), key)
            else:
                tx.put(self._c("faults"), key, fault | {"times": fault["times"] - 1})
            return fault
        return None

    # --- dispatch -------------------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            fault = self._take_fault(tx, None, request.method, request.path)
        if fault is not None:
            kind = fault["kind"]
            if kind == "latency":
                time.sleep(float(fault.get("seconds", 1)))
            elif kind == "timeout_before_accept":
                return SandboxResponse(status=504, body=b"", timeout=True)
            elif kind == "http_error":
                return self.render_http_error(int(fault.get("status", 500)))
            elif kind == "rate_limit":
                return self.render_rate_limit(float(fault.get("retry_after", 1)))
            elif kind == "error":
                return self.render_error(fault["error"], fault.get("status"))
        response = self._dispatch(request)
        if fault is not None and fault["kind"] == "timeout_after_accept":
            response.timeout = True
        return response

    def _dispatch(self, request: SandboxRequest) -> SandboxResponse:
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                try:
                    return handler(request, **match.groupdict())
                except SandboxError as exc:
                    return self.render_error(exc.error, exc.status)
        return self.render_not_found(request)

    def render_not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self.render_error("Not Found", 404)


@dataclass(frozen=True)
class SandboxSeed:
    """A funded sandbox account with one saved destination, for tests and the demo."""

    credentials: Any  # venues.interface.VenueCredentials
    options: Any  # venues.interface.VenueSettings
    asset: str
    network: str
    address: str
    memo: str
    venue_key: str
    precision: int
    minimum: Decimal
    balance: Decimal
    # Every destination registered for the account, the primary one first. Each is a dict with
    # asset, network, address, memo, venue_key, precision and minimum (the demo whitelists them).
    destinations: tuple[dict[str, Any], ...] = ()
