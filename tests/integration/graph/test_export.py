"""CSV exports: exact content against the rules of tests/integration/pipeline/expected.py
(not the SQL), streaming across keyset pages, and every refusal as one line."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

import graph.export
from jobs.hl_parse_funding import parse_funding
from storage import funding, markets, orgs, rollups
from storage.fills import Fill
from storage.markets import Resolution
from tests.factories import address, fill, ms
from tests.integration.graph.conftest import Api, make_token
from tests.integration.graph.seed import W2, W3, W4
from tests.integration.graph.test_fills import newest_first, plant, planted
from tests.integration.pipeline.expected import Expected, add_funding, kind, price, store

FILL_HEADER = (
    "time,coin,market,dex,side,dir,px,sz,volume_usd,fee,fee_token,fee_usd,"
    "closed_pnl_usd,tid,oid,hash"
)
DAY_HEADER = (
    "day,dau,trade_count,spot_volume_usd,perp_volume_usd,outcome_volume_usd,"
    "total_volume_usd,fees_usd,realized_pnl_usd,avg_volume_per_user,funding_usd,net_pnl_usd,"
    "deposits_usd,withdrawals_usd"
)
W5, W6 = address(5), address(6)


def text(value: Decimal) -> str:
    return format(value, "f")


def six(value: Decimal | None) -> str:
    """A USD amount by the API's rule: 6 places, half-even (Decimal's default), no -0."""
    if value is None:
        return ""
    rounded = value.quantize(Decimal("0.000001"))
    return text(abs(rounded) if rounded == 0 else rounded)


def expected_fill_row(f: Fill) -> list[str]:
    priced = price(f.coin, f.px, f.sz, f.fee, f.fee_token, f.closed_pnl)
    return [
        datetime.fromtimestamp(f.time / 1000, UTC).isoformat(),
        f.coin,
        kind(f.coin).upper(),
        f.coin.split(":")[0] if ":" in f.coin else "",
        f.side,
        f.dir,
        text(f.px),
        text(f.sz),
        six(priced.volume),
        text(f.fee),
        f.fee_token,
        six(priced.fee),
        six(priced.pnl),
        str(f.tid),
        str(f.oid),
        f.hash,
    ]


def rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


async def get(api: Api, path: str, user: str | None = "alice", **params: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {api.token(user)}"} if user else {}
    response = await api.client.get(api.url + path, params=params, headers=headers)
    return response.status_code, response.text


async def test_fills_csv_is_the_wallets_fills_by_the_rules(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = plant(api)
    # Pages of two: the burst in one millisecond spans pages, as a long history would.
    monkeypatch.setattr(graph.export, "PAGE_ROWS", 2)
    status, body = await get(api, "/export/fills.csv", address=W4.upper().replace("0X", "0x"))
    assert status == 200, body
    got = rows(body)
    assert ",".join(got[0]) == FILL_HEADER
    assert got[1:] == [expected_fill_row(f) for f in newest_first(batch)]
    # A range: the DateRange rules, both days included.
    today = api.seeded.today
    yesterday = (today - timedelta(days=1)).isoformat()
    status, body = await get(
        api, "/export/fills.csv", address=W4, to=yesterday, **{"from": yesterday}
    )
    in_range = [
        f
        for f in batch
        if datetime.fromtimestamp(f.time / 1000, UTC).date().isoformat() == yesterday
    ]
    assert in_range and len(in_range) < len(batch)
    assert rows(body)[1:] == [expected_fill_row(f) for f in newest_first(in_range)]


async def test_a_long_history_streams_in_pages(api: Api) -> None:
    start = ms(2025, 12, 1)
    batch = [fill(start + n * 60_000, tid=n, oid=n, px=Decimal("2.5")) for n in range(2_500)]
    with psycopg.connect(api.db_url) as conn:
        (w4,) = orgs.upsert_wallets(conn, [W4])
        store(conn, w4.id, batch)
    response = await api.client.get(
        api.url + "/export/fills.csv",
        params={"address": W4},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "content-length" not in response.headers  # streamed, not built whole
    got = rows(response.text)
    assert got[1:] == [expected_fill_row(f) for f in newest_first(batch)]


def funding_entry(day: date, coin: str, usdc: str) -> dict[str, Any]:
    """A `userFunding` entry at 08:00 UTC of `day`."""
    time_ms = int(datetime(day.year, day.month, day.day, 8, tzinfo=UTC).timestamp() * 1000)
    delta = {"type": "funding", "coin": coin, "usdc": usdc, "szi": "1", "fundingRate": "0.0001"}
    return {"time": time_ms, "hash": "0x" + "0" * 64, "delta": delta}


def plant_org(api: Api) -> tuple[Expected, list[int], list[date]]:
    """Org B's new wallets W5 and W6 get the planted fills, rolled up as the pipeline
    does; returns the independent computation over those fills, their ids and days."""
    fills_5 = planted(api)
    fills_6 = [f for f in planted(api) if f.coin in ("BTC", "@107", "ETH")]
    expected = Expected()
    with psycopg.connect(api.db_url) as conn:
        orgs.track_wallets(conn, api.seeded.org_b, [W5, W6])
        w5, w6 = orgs.upsert_wallets(conn, [W5, W6])
        store(conn, w5.id, fills_5)
        store(conn, w6.id, fills_6)
        markets.resolve(conn, [Resolution("@107", "HYPE", "USDC", "HYPE/USDC")])
        days = sorted({datetime.fromtimestamp(f.time / 1000, UTC).date() for f in fills_5})
        # Funding paid and received on the first and last days, as the exchange sends it.
        paid = [funding_entry(days[0], "BTC", "-1.2500005"), funding_entry(days[-1], "ETH", "0.75")]
        funding.insert_funding(conn, w5.id, [parse_funding(raw) for raw in paid])
        add_funding(expected, w5.id, paid)
        for day in days:
            rollups.rebuild_wallet_days(conn, [w5.id, w6.id], day)
            rollups.rebuild_org_day(conn, api.seeded.org_b, day)
    expected.add(w5.id, fills_5)
    expected.add(w6.id, fills_6)
    return expected, [w5.id, w6.id], days


async def test_daily_csv_is_the_orgs_days_by_the_rules(api: Api) -> None:
    """Org B's seeded metric rows (of W2 and W3) are dropped; W5 and W6's fills count."""
    with psycopg.connect(api.db_url) as conn:
        conn.execute("DELETE FROM global_day_metrics WHERE org_id = %s", (api.seeded.org_b,))
        conn.execute(
            "DELETE FROM wallet_day_metrics WHERE wallet_id IN "
            "(SELECT id FROM wallets WHERE address = ANY(%s))",
            ([W2, W3],),
        )
    expected, ids, days = plant_org(api)
    by_day = expected.org_days(ids)
    first, last = days[0], api.seeded.today
    status, body = await get(
        api, "/export/daily.csv", user="bob", to=last.isoformat(), **{"from": first.isoformat()}
    )
    assert status == 200, body
    got = rows(body)
    assert ",".join(got[0]) == DAY_HEADER
    wanted = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        d = by_day.get(day)
        if d is None:
            wanted.append([day.isoformat(), "0", "0", *["0.000000"] * 6, "0.00",
                           *["0.000000"] * 4])  # fmt: skip
            continue
        avg = (d.total / d.dau).quantize(Decimal("0.01")) if d.dau else Decimal("0.00")
        wanted.append(
            [
                day.isoformat(),
                str(d.dau),
                str(d.trade_count),
                six(d.spot),
                six(d.perp),
                six(d.outcome),
                six(d.total),
                six(d.fees),
                six(d.pnl),
                text(avg),
                six(d.funding),
                six(d.net_pnl),
                six(d.deposits),
                six(d.withdrawals),
            ]
        )
    assert got[1:] == wanted
    assert len(wanted) == 41  # the planted fills reach 40 days back
    assert sum(row[10] != "0.000000" for row in got[1:]) == 2  # the two days of funding


async def test_daily_csv_defaults_to_30_days(shared_api: Api) -> None:
    api = shared_api
    status, body = await get(api, "/export/daily.csv")
    got = rows(body)
    assert status == 200
    assert [r[0] for r in got[1:]] == [
        (api.seeded.today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)
    ]
    # Org A's seeded day: 600.875 over 2 users.
    assert got[-1][1:] == ["2", "5", "100.500000", "500.375000", "0.000000", "600.875000",
                           "0.500000", "19.500000", "300.44",
                           "0.000000", "19.000000", "0.000000", "0.000000"]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "user", "params", "status", "words"),
    [
        ("/export/daily.csv", None, {}, 401, "no bearer token"),
        ("/export/fills.csv", None, {"address": W4}, 401, "no bearer token"),
        ("/export/daily.csv", "nobody", {}, 403, "has no profile"),
        ("/export/fills.csv", "alice", {}, 400, "address: required"),
        ("/export/fills.csv", "alice", {"address": "0x12"}, 400, "address"),
        ("/export/fills.csv", "alice", {"address": W3}, 404, "does not track"),
        ("/export/fills.csv", "bob", {"address": W4}, 404, "does not track"),
        ("/export/daily.csv", "alice", {"from": "2026-01-01"}, 400, "both from and to"),
        ("/export/daily.csv", "alice", {"from": "2026-13-01", "to": "2026-01-02"}, 400, "from:"),
        ("/export/daily.csv", "alice", {"from": "20260101", "to": "2026-01-02"}, 400, "YYYY-MM-DD"),
        ("/export/daily.csv", "alice", {"from": "2026-01-03", "to": "2026-01-02"}, 400, "after to"),
        ("/export/daily.csv", "alice", {"from": "2020-01-01", "to": "2021-01-02"}, 400, "366 days"),
        ("/export/daily.csv", "alice", {"from": "2026-01-01", "to": "2999-01-01"}, 400, "today"),
    ],
)
async def test_refusals_are_one_line(
    shared_api: Api, path: str, user: str | None, params: dict[str, str], status: int, words: str
) -> None:
    api = shared_api
    got_status, body = await get(api, path, user, **params)
    assert got_status == status, body
    assert words in body
    assert body.count("\n") == 1 and body.endswith("\n")


async def test_a_repeated_parameter_is_refused(shared_api: Api) -> None:
    """`?address=A&address=B` names no one wallet: it is refused, where the last one
    was taken silently (the same for `from` and `to`)."""
    api = shared_api
    headers = {"Authorization": f"Bearer {api.token('alice')}"}
    day = api.seeded.day(0)
    for path, params in (
        ("/export/fills.csv", [("address", W4), ("address", W4)]),
        ("/export/fills.csv", [("address", W4), ("from", day), ("to", day), ("to", day)]),
        ("/export/daily.csv", [("from", day), ("from", day), ("to", day)]),
    ):
        response = await api.client.get(api.url + path, params=params, headers=headers)
        assert response.status_code == 400, response.text
        assert "given 2 times; give it once" in response.text
        assert response.text.count("\n") == 1


async def test_two_authorization_headers_are_401(shared_api: Api) -> None:
    """Two tokens name two callers: neither is taken (the first one was, where GraphQL
    takes the last)."""
    api = shared_api
    both = [("Authorization", f"Bearer {api.token(u)}") for u in ("bob", "alice")]
    response = await api.client.get(api.url + "/export/daily.csv", headers=both)
    assert response.status_code == 401, response.text
    assert "several Authorization headers" in response.text


async def test_a_bad_or_expired_token_is_401(shared_api: Api) -> None:
    api = shared_api
    for token in ("not-a-jwt", make_token("alice", expires_in=-60)):
        response = await api.client.get(
            api.url + "/export/daily.csv", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_both_orgs_tracking_a_wallet_both_export_it(shared_api: Api) -> None:
    api = shared_api
    for user in ("alice", "bob"):
        status, body = await get(api, "/export/fills.csv", user, address=W2)
        assert (status, body.splitlines()) == (200, [FILL_HEADER])
