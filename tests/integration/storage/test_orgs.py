"""Organisations, users and tracked wallets, with address normalisation."""

from __future__ import annotations

import psycopg
import pytest

from storage import orgs
from storage.errors import InvalidAddress, InvalidRole, OrgNotFound

UPPER = "0x" + "AB" * 20
LOWER = UPPER.lower()


def test_same_address_in_two_cases_for_two_orgs(conn: psycopg.Connection) -> None:
    a = orgs.create_org(conn, "Alpha")
    b = orgs.create_org(conn, "Beta")
    orgs.track_wallets(conn, a.id, [UPPER])
    orgs.track_wallets(conn, b.id, [LOWER])
    assert conn.execute("SELECT address FROM wallets").fetchall() == [(LOWER,)]
    assert conn.execute("SELECT count(*) FROM org_wallets").fetchone() == (2,)
    assert [w.address for w in orgs.tracked_wallets(conn, a.id)] == [LOWER]


def test_tracking_twice_links_once(conn: psycopg.Connection) -> None:
    org = orgs.create_org(conn, "Alpha")
    _, linked = orgs.track_wallets(conn, org.id, [LOWER, UPPER])
    assert [w.address for w in linked] == [LOWER]
    _, linked = orgs.track_wallets(conn, org.id, [LOWER])
    assert linked == []


@pytest.mark.parametrize(
    "bad", ["", "0x123", "ab" * 21, "0x" + "g" * 40, "0x" + "a" * 41, " 0x" + "a" * 39]
)
def test_invalid_addresses_write_nothing(conn: psycopg.Connection, bad: str) -> None:
    org = orgs.create_org(conn, "Alpha")
    with pytest.raises(InvalidAddress, match="not a wallet address"):
        orgs.track_wallets(conn, org.id, [LOWER, bad])
    assert conn.execute("SELECT count(*) FROM wallets").fetchone() == (0,)


def test_database_refuses_unnormalised_address(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO wallets (address) VALUES (%s)", (UPPER,))


def test_users_and_roles(conn: psycopg.Connection) -> None:
    org = orgs.create_org(conn, "Alpha")
    orgs.add_user(conn, "user-1", org.id, "viewer")
    assert orgs.get_profile(conn, "user-1") == orgs.Profile("user-1", org.id, "viewer")
    orgs.add_user(conn, "user-1", org.id, "admin")
    assert orgs.get_profile(conn, "user-1").role == "admin"  # type: ignore[union-attr]
    assert orgs.get_profile(conn, "nobody") is None
    with pytest.raises(InvalidRole):
        orgs.add_user(conn, "user-2", org.id, "owner")


def test_unknown_org(conn: psycopg.Connection) -> None:
    with pytest.raises(OrgNotFound):
        orgs.get_org(conn, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(OrgNotFound, match="not an organisation id"):
        orgs.get_org(conn, "not-a-uuid")


def test_untrack(conn: psycopg.Connection) -> None:
    org = orgs.create_org(conn, "Alpha")
    orgs.track_wallets(conn, org.id, [LOWER])
    assert orgs.untrack_wallet(conn, org.id, UPPER) is not None
    assert orgs.untrack_wallet(conn, org.id, UPPER) is None
    assert orgs.tracked_wallets(conn, org.id) == []


def test_a_shared_wallets_ingest_is_for_the_org_with_fewest_wallets(
    conn: psycopg.Connection,
) -> None:
    big, small = orgs.create_org(conn, "Big"), orgs.create_org(conn, "Small")
    shared, own = "0x" + "a" * 40, "0x" + "b" * 40
    orgs.track_wallets(conn, big.id, [shared, own, "0x" + "c" * 40])
    orgs.track_wallets(conn, small.id, [shared])
    ids = {w.address: w.id for w in orgs.upsert_wallets(conn, [shared, own])}
    assert orgs.fair_orgs(conn, [ids[shared], ids[own]]) == {
        ids[shared]: small.id,
        ids[own]: big.id,
    }
    assert orgs.fair_orgs(conn, []) == {}
