"""CSV downloads: `/export/fills.csv` (one wallet's fills) and `/export/daily.csv` (the
org's days).

The same bearer token, org scoping and numbers as the GraphQL API: the rows come
from the statements behind `wallet { fills }` and `globalMetrics`
(`storage/dashboard.py`, priced by the rollups' own fragment), and go through the
same types (`graph.types.Fill`, `DayMetrics`: USD amounts at 6 places half-even,
prices and sizes in Hyperliquid's digits); an amount without a USD value is an
empty cell. `from`/`to` follow the `DateRange` rules (`graph.arguments`).

A wallet's fills are streamed in keyset pages of PAGE_ROWS, each read on a
connection borrowed for that page only, so memory stays flat however long the
history and a slow download holds no connection. The first page is read before
the response starts, so an unavailable database is still a 503; a failure later
cuts the download short (the chunked body never ends), which a client notices.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import date
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from graph.arguments import checked_days
from graph.auth import Callers, TokenVerifier, authorization, bearer_token
from graph.context import Caller, Services
from graph.endpoint import UNAVAILABLE, utc_day
from graph.errors import BadUserInput, ClientError
from graph.schema import decimal_text
from graph.throttle import RateLimited, Throttle
from graph.types import DayMetrics, Fill
from storage import dashboard, orgs
from storage.db import async_borrow
from storage.errors import DatabaseUnavailable, InvalidAddress

PAGE_ROWS = 1000
FIRST_DAY = date(1970, 1, 1)  # a wallet's whole history, when no range is given
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

FILL_COLUMNS = [
    "time",
    "coin",
    "market",
    "dex",
    "side",
    "dir",
    "px",
    "sz",
    "volume_usd",
    "fee",
    "fee_token",
    "fee_usd",
    "closed_pnl_usd",
    "tid",
    "oid",
    "hash",
]
# Every field of `DayMetrics`, in its order, as snake_case: the CSV follows the type.
DAY_COLUMNS = [f.name for f in dataclasses.fields(DayMetrics)]


class NotTracked(ClientError):
    code = "NOT_FOUND"
    status = 404


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return decimal_text(value)
    return str(value)


def _csv(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def fill_cells(row: dashboard.FillRow) -> list[object]:
    fill = Fill.of(row)
    return [
        fill.time.isoformat(),
        fill.coin,
        fill.market.name,
        fill.dex,
        fill.side,
        fill.dir,
        fill.px,
        fill.sz,
        fill.volume_usd,
        row.fee,
        row.fee_token,
        fill.fee_usd,
        fill.closed_pnl_usd,
        fill.tid,
        fill.oid,
        fill.hash,
    ]


def day_cells(row: dashboard.DayMetrics) -> list[object]:
    day = DayMetrics.of(row)
    return [getattr(day, name) for name in DAY_COLUMNS]


def _day(name: str, text: str) -> date:
    if _DAY.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise BadUserInput(f"{name}: {text[:40]!r} is not a day: expected YYYY-MM-DD")


def _param(request: Request, name: str) -> str | None:
    """A query parameter given at most once: of `?address=A&address=B` neither is more
    the request's than the other (a proxy or a script may have added one)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadUserInput(f"{name}: given {len(values)} times; give it once")
    return values[0] if values else None


def _range(request: Request, today: date, default: tuple[date, date] | None) -> tuple[date, date]:
    """`from` and `to` by the DateRange rules; `default` when both are absent."""
    start, end = _param(request, "from"), _param(request, "to")
    if start is None and end is None and default is not None:
        return default
    if start is None or end is None:
        raise BadUserInput("give both from and to (YYYY-MM-DD, UTC days, both included)")
    try:
        return checked_days(_day("from", start), _day("to", end), today)
    except BadUserInput as exc:
        raise BadUserInput(exc.message.removeprefix("between: ")) from None


def _failure(exc: ClientError) -> Response:
    headers = {"www-authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else None
    if isinstance(exc, RateLimited):
        headers = {"retry-after": str(exc.retry_after)}
    status = exc.status if exc.status != 200 else 400
    line = exc.message.replace("\n", " ")
    return PlainTextResponse(line + "\n", status_code=status, headers=headers)


def _download(name: str, body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


class Exports:
    def __init__(
        self, services: Services, verifier: TokenVerifier, callers: Callers, throttle: Throttle
    ) -> None:
        self.services = services
        self.verifier = verifier
        self.callers = callers
        self.throttle = throttle

    async def _caller(self, request: Request) -> Caller:
        """The verified caller, within its and its org's request rates (a download is a
        request: 429 with Retry-After beyond them)."""
        claims = await self.verifier.verify(bearer_token(authorization(request.headers.raw)))
        caller = await self.callers.caller(claims["sub"])
        await self.throttle.admit(caller)
        return caller

    async def fills(self, request: Request) -> Response:
        try:
            return await self._fills(request)
        except ClientError as exc:
            return _failure(exc)
        except DatabaseUnavailable:
            return PlainTextResponse(UNAVAILABLE + "\n", 503, headers={"retry-after": "5"})

    async def daily(self, request: Request) -> Response:
        try:
            return await self._daily(request)
        except ClientError as exc:
            return _failure(exc)
        except DatabaseUnavailable:
            return PlainTextResponse(UNAVAILABLE + "\n", 503, headers={"retry-after": "5"})

    async def _page(
        self,
        org_id: uuid.UUID,
        address: str,
        days: tuple[date, date],
        after: tuple[int, int, int, str] | None,
    ) -> dashboard.FillPage:
        async with async_borrow(self.services.pool, self.services.pool_timeout) as conn:
            if after is None and await dashboard.tracked_wallet(conn, org_id, address) is None:
                raise NotTracked(f"address: the organisation does not track {address}")
            return await dashboard.wallet_fills(
                conn,
                org_id,
                address,
                days[0],
                days[1],
                PAGE_ROWS,
                after=after,
                usd_tokens=self.services.usd_tokens,
            )

    async def _fills(self, request: Request) -> Response:
        caller = await self._caller(request)
        raw = _param(request, "address")
        if not raw:
            raise BadUserInput("address: required (0x followed by 40 hexadecimal digits)")
        try:
            address = orgs.normalize_address(raw)
        except InvalidAddress as exc:
            raise BadUserInput(f"address: {exc.message}") from None
        today = date.fromisoformat(utc_day())
        days = _range(request, today, (FIRST_DAY, today))
        first = await self._page(caller.org_id, address, days, None)

        async def body() -> AsyncIterator[str]:
            page = first
            yield _csv([FILL_COLUMNS])
            while True:
                yield _csv(fill_cells(row) for row in page.fills)
                if not page.has_next_page:
                    return
                last = page.fills[-1]
                after = (last.time_ms, last.tid, last.oid, last.coin)
                page = await self._page(caller.org_id, address, days, after)

        named = "" if days[0] == FIRST_DAY else f"-{days[0]}-{days[1]}"
        return _download(f"fills-{address}{named}.csv", body())

    async def _daily(self, request: Request) -> Response:
        caller = await self._caller(request)
        today = date.fromisoformat(utc_day())
        start, end = _range(request, today, dashboard.range_bounds("D30", today))
        async with async_borrow(self.services.pool, self.services.pool_timeout) as conn:
            rows = await dashboard.global_series(conn, caller.org_id, start, end)

        async def body() -> AsyncIterator[str]:
            yield _csv([DAY_COLUMNS, *(day_cells(row) for row in rows)])

        return _download(f"daily-{start}-{end}.csv", body())
