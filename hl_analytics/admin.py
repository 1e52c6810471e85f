"""The administrative commands: migrate, orgs, users, wallets."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from hl_analytics.settings import Settings
from storage import embedded, orgs
from storage.db import connect
from storage.errors import MigrationError, StorageError
from storage.migrate import migrate
from storage.text import printable


@contextmanager
def transaction(settings: Settings) -> Iterator[psycopg.Connection]:
    """One transaction on the configured database, with database errors made one-line."""
    conn = connect(embedded.database_url(settings))
    try:
        with conn:
            yield conn
    except psycopg.errors.UndefinedTable:
        raise MigrationError(
            "the database is not migrated: run `hl-analytics migrate` first"
        ) from None
    except psycopg.errors.ForeignKeyViolation as exc:
        raise StorageError(f"refused by the database: {exc.diag.message_primary}") from None
    finally:
        conn.close()


def migrate_cmd(settings: Settings, args: argparse.Namespace) -> int:
    applied = migrate(embedded.database_url(settings))
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    print("database is up to date" if not applied else f"{len(applied)} migration(s) applied")
    return 0


def orgs_create(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        org = orgs.create_org(conn, args.name)
    print(org.id)
    return 0


def orgs_list(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        for org in orgs.list_orgs(conn):
            print(f"{org.id}  {printable(org.name)}")
    return 0


def users_add(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id)
    with transaction(settings) as conn:
        profile = orgs.add_user(conn, args.user_id, org_id, args.role)
    print(f"{printable(profile.user_id)} is {profile.role} of {profile.org_id}")
    return 0


def wallets_track(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id)
    addresses = [orgs.normalize_address(a) for a in args.addresses]
    with transaction(settings) as conn:
        wallets, linked = orgs.track_wallets(conn, org_id, addresses)
        _after_tracking_changed(conn, org_id, [w.id for w in linked])
    print(f"{len(linked)} wallet(s) newly tracked, {len(wallets) - len(linked)} already tracked")
    return 0


def wallets_untrack(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id)
    address = orgs.normalize_address(args.address)
    with transaction(settings) as conn:
        orgs.get_org(conn, org_id)  # an unknown org is an error, not "was not tracked"
        wallet = orgs.untrack_wallet(conn, org_id, address)
        if wallet is None:
            print(f"{address} was not tracked by {org_id}")
            return 0
        _after_tracking_changed(conn, org_id, [wallet.id])
    print(f"{address} is no longer tracked by {org_id}")
    return 0


def wallets_list(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id) if args.org_id else None
    with transaction(settings) as conn:
        if org_id is not None:
            orgs.get_org(conn, org_id)  # an unknown org is an error, not an empty list
        for wallet in orgs.tracked_wallets(conn, org_id):
            print(wallet.address)
    return 0


def _after_tracking_changed(
    conn: psycopg.Connection, org_id: object, wallet_ids: list[int]
) -> None:
    """Tracking changes which wallets an org's numbers include: queue the follow-up work
    (ingest of new wallets, recomputation of the org's days) in the same transaction."""
    from jobs.pipeline import tracking_changed

    tracking_changed(conn, orgs.parse_org_id(str(org_id)), wallet_ids)
