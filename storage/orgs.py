"""Organisations, wallets, the links between them, and user profiles."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from storage import ranks
from storage.errors import InvalidAddress, InvalidRole, OrgNotFound, StorageError, TooManyWallets
from storage.text import check_safe

ROLES = ("admin", "viewer")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")

INSERT_ORG = "INSERT INTO orgs (name) VALUES (%s) RETURNING id, name, created_at"
SELECT_ORG = "SELECT id, name, created_at FROM orgs WHERE id = %s"
# Trackers of one org take turns (the count below stays true until they commit).
LOCK_ORG = "SELECT id FROM orgs WHERE id = %s FOR UPDATE"
COUNT_TRACKED = """
SELECT count(*), count(*) FILTER (WHERE wallet_id = ANY(%s::bigint[]))
FROM org_wallets WHERE org_id = %s
"""
SELECT_ORGS = "SELECT id, name, created_at FROM orgs ORDER BY created_at, id"
UPSERT_USER = """
INSERT INTO user_profiles (user_id, org_id, role) VALUES (%s, %s, %s)
ON CONFLICT (user_id) DO UPDATE SET org_id = EXCLUDED.org_id, role = EXCLUDED.role
RETURNING user_id, org_id, role
"""
SELECT_PROFILE = "SELECT user_id, org_id, role FROM user_profiles WHERE user_id = %s"
# Inserts the wallets that are new and returns the ids of all of them, in one round trip.
UPSERT_WALLETS = """
WITH input AS (SELECT unnest(%s::text[]) AS address),
inserted AS (
    INSERT INTO wallets (address) SELECT address FROM input
    ON CONFLICT (address) DO NOTHING RETURNING id, address
)
SELECT id, address FROM inserted
UNION ALL
SELECT w.id, w.address FROM wallets w JOIN input USING (address)
"""
LINK_WALLETS = """
INSERT INTO org_wallets (org_id, wallet_id) SELECT %s, unnest(%s::bigint[])
ON CONFLICT DO NOTHING RETURNING wallet_id
"""
UNLINK_WALLET = """
DELETE FROM org_wallets ow USING wallets w
WHERE ow.wallet_id = w.id AND ow.org_id = %s AND w.address = %s
RETURNING w.id
"""
SELECT_TRACKED = """
SELECT w.id, w.address FROM org_wallets ow JOIN wallets w ON w.id = ow.wallet_id
WHERE ow.org_id = %s ORDER BY w.address
"""
# Whom a wallet's ingest is for, in the queue's fair share: of the orgs tracking it,
# the one that tracks the fewest wallets (the one a long queue would hurt most).
SELECT_FAIR_ORGS = """
WITH sizes AS (
    SELECT org_id, count(*) AS n FROM org_wallets
    WHERE org_id IN (SELECT org_id FROM org_wallets WHERE wallet_id = ANY(%(ids)s::bigint[]))
    GROUP BY org_id
)
SELECT DISTINCT ON (ow.wallet_id) ow.wallet_id, ow.org_id
FROM org_wallets ow JOIN sizes s USING (org_id)
WHERE ow.wallet_id = ANY(%(ids)s::bigint[])
ORDER BY ow.wallet_id, s.n, ow.org_id
"""
SELECT_ALL_TRACKED = """
SELECT DISTINCT w.id, w.address FROM org_wallets ow JOIN wallets w ON w.id = ow.wallet_id
ORDER BY w.address
"""


@dataclass(frozen=True)
class Org:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Profile:
    user_id: str
    org_id: uuid.UUID
    role: str


@dataclass(frozen=True)
class Wallet:
    id: int
    address: str


def normalize_address(address: str) -> str:
    """`0x` + 40 hex digits, lowercased; anything else raises InvalidAddress."""
    candidate = address.strip()
    if not _ADDRESS_RE.match(candidate):
        raise InvalidAddress(
            f"{address!r} is not a wallet address: expected 0x followed by 40 hexadecimal digits"
        )
    return candidate.lower()


def parse_org_id(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise OrgNotFound(
            f"{value!r} is not an organisation id (a UUID, as printed by `orgs create`)"
        ) from None


def create_org(conn: psycopg.Connection, name: str) -> Org:
    if not name.strip() or len(name.strip()) > 200:
        raise StorageError("an organisation name must have 1 to 200 characters")
    check_safe(name, "an organisation name")
    row = conn.execute(INSERT_ORG, (name.strip(),)).fetchone()
    assert row is not None
    return Org(*row)


def get_org(conn: psycopg.Connection, org_id: str | uuid.UUID) -> Org:
    row = conn.execute(SELECT_ORG, (parse_org_id(org_id),)).fetchone()
    if row is None:
        raise OrgNotFound(
            f"no organisation has id {org_id}: list them with `hl-analytics orgs list`"
        )
    return Org(*row)


def list_orgs(conn: psycopg.Connection) -> list[Org]:
    return [Org(*row) for row in conn.execute(SELECT_ORGS)]


def add_user(conn: psycopg.Connection, user_id: str, org_id: str | uuid.UUID, role: str) -> Profile:
    """Creates the profile, or moves an existing user to this org and role."""
    if role not in ROLES:
        raise InvalidRole(f"{role!r} is not a role: use admin or viewer")
    if not user_id or len(user_id) > 255:
        raise StorageError("a user id must have 1 to 255 characters")
    check_safe(user_id, "a user id")
    if user_id != user_id.strip():
        # A token's `sub` is matched exactly: "alice " (a pasted id) would be nobody's.
        raise StorageError(
            f"a user id must not start or end with whitespace ({user_id!r}): "
            "it is matched exactly against the token's `sub`"
        )
    org = get_org(conn, org_id)
    row = conn.execute(UPSERT_USER, (user_id, org.id, role)).fetchone()
    assert row is not None
    return Profile(*row)


def get_profile(conn: psycopg.Connection, user_id: str) -> Profile | None:
    row = conn.execute(SELECT_PROFILE, (user_id,)).fetchone()
    return Profile(*row) if row else None


def upsert_wallets(conn: psycopg.Connection, addresses: Iterable[str]) -> list[Wallet]:
    """Validates every address first, so one bad address writes nothing."""
    normalized = sorted({normalize_address(a) for a in addresses})
    rows = conn.execute(UPSERT_WALLETS, (normalized,)).fetchall()
    return sorted((Wallet(*row) for row in rows), key=lambda w: w.address)


def track_wallets(
    conn: psycopg.Connection,
    org_id: str | uuid.UUID,
    addresses: Sequence[str],
    *,
    max_wallets: int | None = None,
) -> tuple[list[Wallet], list[Wallet]]:
    """Links the addresses to the org; returns (all wallets given, newly linked ones).
    With `max_wallets`, `TooManyWallets` (nothing linked) when the org would track more."""
    through = ranks.lock_for_tracking(conn)  # first: see storage/ranks.py
    org = get_org(conn, org_id)
    wallets = upsert_wallets(conn, addresses)
    if max_wallets is not None:
        conn.execute(LOCK_ORG, (org.id,))
        row = conn.execute(COUNT_TRACKED, ([w.id for w in wallets], org.id)).fetchone()
        assert row is not None
        tracked, already = int(row[0]), int(row[1])
        new = len(wallets) - already
        if new and tracked + new > max_wallets:
            raise TooManyWallets(
                f"the org tracks {tracked:,} wallet(s); {new:,} more would exceed "
                f"HL_ANALYTICS_MAX_WALLETS_PER_ORG={max_wallets}: untrack some first, "
                "or have the operator raise the setting"
            )
    linked = {row[0] for row in conn.execute(LINK_WALLETS, (org.id, [w.id for w in wallets]))}
    ranks.track(conn, org.id, sorted(linked), through)
    return wallets, [w for w in wallets if w.id in linked]


def untrack_wallet(
    conn: psycopg.Connection, org_id: str | uuid.UUID, address: str
) -> Wallet | None:
    """Unlinks the wallet; returns it, or None when the org did not track it."""
    normalized = normalize_address(address)
    ranks.lock_for_tracking(conn)  # its rows go by the cascade: see storage/ranks.py
    row = conn.execute(UNLINK_WALLET, (parse_org_id(org_id), normalized)).fetchone()
    return Wallet(row[0], normalized) if row else None


def fair_orgs(conn: psycopg.Connection, wallet_ids: Sequence[int]) -> dict[int, uuid.UUID]:
    """wallet id → the org its ingest is queued for (SELECT_FAIR_ORGS); untracked left out."""
    if not wallet_ids:
        return {}
    rows = conn.execute(SELECT_FAIR_ORGS, {"ids": list(wallet_ids)})
    return {int(r[0]): r[1] for r in rows}


def tracked_wallets(
    conn: psycopg.Connection, org_id: str | uuid.UUID | None = None
) -> list[Wallet]:
    """The org's tracked wallets, or every wallet tracked by any org."""
    if org_id is None:
        return [Wallet(*row) for row in conn.execute(SELECT_ALL_TRACKED)]
    return [Wallet(*row) for row in conn.execute(SELECT_TRACKED, (parse_org_id(org_id),))]
