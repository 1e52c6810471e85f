"""The tracked wallets `node-ingest` follows, kept current by the change notifications.

Tracking or untracking a wallet notifies `hl_metrics_changed` with the org's id
at commit (jobs.tracking, storage.changes); so do an org's rollups, which the
notification does not tell apart. `node-ingest` LISTENs on its own connection,
ends its wait when caught up as soon as one arrives and, before each step,
re-reads the wallets of the orgs notified since the last one (one indexed
query, whatever the number of notifications): a wallet tracked now is followed
from the next batch on, without reading every tracked wallet of every org per
batch. The whole set is read again when the link is (re)established (LISTEN
first, then the read, so nothing falls between: notifications may have been
missed while it was down) and every `reread_s` seconds as a safety net.

A wallet newly tracked while the follower runs is handed back once as `added`:
the follower queues one more API ingest of it in the transaction of the next
batch it stores. Tracking it already queued its pass over its
reachable history (jobs.tracking); if that pass ran before the follower applied
the notification, fills written in between (in a batch read with the old set)
would otherwise be in neither source. The ingest resumes from the wallet's
cursor (one request) and merges with a pass still queued.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import psycopg

from storage import changes, node_position
from storage.errors import DatabaseUnavailable, first_line

log = logging.getLogger(__name__)

DEFAULT_REREAD_S = 300.0
APP_NAME = "hl-analytics-node-listen"


class TrackedWallets:
    """Address → wallet id of every tracked wallet, as of the last `current`."""

    def __init__(self, database_url: str, *, reread_s: float = DEFAULT_REREAD_S) -> None:
        self.database_url = database_url
        self.reread_s = reread_s
        self._listen: psycopg.Connection | None = None
        self._by_org: dict[uuid.UUID, dict[str, int]] = {}
        self._wallets: dict[str, int] = {}
        self._dirty: set[uuid.UUID] = set()
        self._read_all = True
        self._started = False
        self._read_at = float("-inf")
        self._added: set[str] = set()

    def current(self, conn: psycopg.Connection) -> dict[str, int]:
        """The tracked wallets, after the changes notified so far; reads on `conn`."""
        self._take(0)
        if self._listen is None:
            self._connect()
        if self._read_all or time.monotonic() - self._read_at >= self.reread_s:
            self._read_at = time.monotonic()
            self._read_all = False
            self._dirty.clear()
            self._apply(node_position.tracked_by_org(conn), replace=True)
        elif self._dirty:
            orgs, self._dirty = sorted(self._dirty), set()
            self._apply(node_position.tracked_by_org(conn, orgs), replace=False)
        return self._wallets

    @property
    def wallets(self) -> dict[str, int]:
        """The set as of the last `current` (the follower's, before each step)."""
        return self._wallets

    def take_added(self) -> list[str]:
        """The wallets tracked since the follower started, not yet handed back."""
        added = sorted(a for a in self._added if a in self._wallets)
        self._added.clear()
        return added

    def give_back(self, added: list[str]) -> None:
        """`take_added`'s wallets, whose batch did not commit."""
        self._added.update(added)

    def wait(self, timeout_s: float, stop: threading.Event) -> None:
        """Waits up to `timeout_s`, less if a change is notified (or `stop` is set when
        not listening)."""
        if self._listen is not None:
            self._take(timeout_s)
        else:
            stop.wait(timeout_s)

    def close(self) -> None:
        if self._listen is not None:
            self._listen.close()
            self._listen = None

    def _connect(self) -> None:
        try:
            self._listen = changes.listen_changes_sync(self.database_url, APP_NAME)
        except DatabaseUnavailable as exc:
            log.warning(
                "cannot listen for tracking changes (%s): the tracked wallets are read "
                "before every batch until it can",
                first_line(exc),
                extra={"action": "node_listen_lost"},
            )
            self._listen = None
        # Connected or not, the set is read whole: changes may have been missed.
        self._read_all = True

    def _take(self, timeout_s: float) -> bool:
        """Notes the orgs notified; whether any was. A lost link is dropped (`current`
        reconnects and reads the whole set)."""
        if self._listen is None:
            self._read_all = True
            return False
        try:
            payloads = changes.received(self._listen, timeout_s)
        except DatabaseUnavailable as exc:
            log.warning(
                "%s: reconnecting and reading every tracked wallet again",
                exc.message,
                extra={"action": "node_listen_lost"},
            )
            self.close()
            self._read_all = True
            return True
        for payload in payloads:
            try:
                self._dirty.add(changes.parse_change(payload).org_id)
            except ValueError:
                self._read_all = True
        return bool(payloads)

    def _apply(self, by_org: dict[uuid.UUID, dict[str, int]], *, replace: bool) -> None:
        if replace:
            self._by_org = by_org
        else:
            for org, wallets in by_org.items():
                if wallets:
                    self._by_org[org] = wallets
                else:
                    self._by_org.pop(org, None)
        wallets = {a: w for org_wallets in self._by_org.values() for a, w in org_wallets.items()}
        if self._started:
            self._added |= wallets.keys() - self._wallets.keys()
        self._started = True
        self._wallets = wallets
