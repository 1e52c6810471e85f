"""The administrative commands: migrate, orgs, users, wallets."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager

import psycopg

from hl_core.settings import Settings
from jobs import tracking
from storage import embedded, orgs
from storage.db import connection
from storage.migrate import migrate
from storage.text import printable


def transaction(settings: Settings) -> AbstractContextManager[psycopg.Connection]:
    """One transaction on the configured database; its errors are storage's one-line ones."""
    return connection(embedded.database_url(settings))


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
        done = tracking.track_wallets(
            conn, org_id, addresses, max_wallets=settings.hl_analytics_max_wallets_per_org
        )
    added, given = len(done.added), len(done.wallets)
    print(f"{added} wallet(s) newly tracked, {given - added} already tracked")
    return 0


def wallets_untrack(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id)
    address = orgs.normalize_address(args.address)
    with transaction(settings) as conn:
        # An unknown org is an error (OrgNotFound), not "was not tracked".
        wallet = tracking.untrack_wallet(conn, org_id, address)
    if wallet is None:
        print(f"{address} was not tracked by {org_id}")
        return 0
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
