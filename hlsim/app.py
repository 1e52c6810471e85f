"""The simulated exchange as a Starlette app: `/info` plus `/_sim/*` controls.

Starlette, like the API's, because an app is then a few plain handlers that
uvicorn serves in a thread of a test or as its own process.

`POST /info` answers `userFillsByTime`, `userFills`, `userFunding` (at most
500 entries a page, hlsim.funding), `clearinghouseState` (optional `dex`) and
`spotClearinghouseState` (hlsim.account), `userNonFundingLedgerUpdates` (at
most 500 a page, hlsim.ledger), `spotMeta`, `perpDexs` and `meta` with
Hyperliquid's JSON shapes. `meta` takes an optional `dex`
("" or absent: the default dex; an unlisted dex gets 422). `userFillsByTime`
takes an optional `dex` too: given (and not ""), only fills of that builder
dex's perps are answered; absent, every fill of the wallet, of every market
kind, as before. How the real API scopes `userFillsByTime` by `dex` is
reported inconsistently, so clients should not rely on either reading; the
simulator picks the one that makes a dex filter visible in tests.

Before answering, `/info` applies the next queued fault plan, then the
client's weight budget (429 when spent), and it records every request in
the request log. Bad requests get 422 with a one-line reason, as
the real API does for bodies it cannot deserialize.

With `short_pages` set, every `userFillsByTime` answer is cut short at a
random length (hlsim.faults.ShortPages), as the real API may do.

Controls (not part of Hyperliquid's API): `POST /_sim/faults` queues a fault
plan, `DELETE /_sim/faults` drops them; `GET /_sim/requests?since=T` reads
the request log, `DELETE /_sim/requests` clears it; `POST /_sim/clock`
with `{"now_ms": T}` advances the market; `GET /_sim/wallets` lists wallets.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hlsim.coins import DEX_BY_NAME
from hlsim.faults import Faults, InvalidFaultPlan, ShortPages
from hlsim.market import Market
from hlsim.requestlog import LoggedRequest, RequestLog, now
from hlsim.weights import DEFAULT_PER_MINUTE, WeightBudget, weight

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
SUPPORTED = (
    "userFillsByTime",
    "userFills",
    "userFunding",
    "clearinghouseState",
    "spotClearinghouseState",
    "userNonFundingLedgerUpdates",
    "spotMeta",
    "perpDexs",
    "meta",
)


class BadRequest(Exception):
    """The request body is not a valid `/info` request."""


@dataclass
class SimState:
    """Everything the app serves from; tests hold it to plant fills and faults."""

    market: Market
    budget: WeightBudget = field(default_factory=lambda: WeightBudget(DEFAULT_PER_MINUTE))
    faults: Faults = field(default_factory=Faults)
    log: RequestLog = field(default_factory=RequestLog)
    # When set, the market trades in real time: each request first advances it to clock().
    clock: Callable[[], int] | None = None
    # When set, fill pages are cut at random lengths below the 2000-fill cap.
    short_pages: ShortPages | None = None


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _int(body: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"{key} must be a non-negative integer of epoch milliseconds")
    return value


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    if not isinstance(user, str) or not _ADDRESS.match(user):
        raise BadRequest("user must be 0x followed by 40 hexadecimal digits")
    return user.lower()


def _dex(body: dict[str, Any]) -> str:
    dex = body.get("dex", "")
    if dex is None:
        return ""
    if not isinstance(dex, str):
        raise BadRequest("dex must be a string, the name of a perp dex")
    if dex and dex not in DEX_BY_NAME:
        raise BadRequest(f"unknown perp dex {dex!r}")
    return dex


def answer(market: Market, body: dict[str, Any]) -> Any:
    """The JSON answer of one `/info` request."""
    kind = body.get("type")
    if kind == "spotMeta":
        return market.spot_meta()
    if kind == "perpDexs":
        return market.perp_dexs()
    if kind == "meta":
        return market.meta(_dex(body))
    if kind == "userFills":
        if body.get("aggregateByTime"):
            raise BadRequest("aggregateByTime=true is not simulated")
        return market.user_fills(_user(body))
    if kind == "userFillsByTime":
        if body.get("aggregateByTime"):
            raise BadRequest("aggregateByTime=true is not simulated")
        start = _int(body, "startTime", required=True)
        end = _int(body, "endTime", required=False)
        return market.user_fills_by_time(_user(body), start or 0, end, _dex(body) or None)
    if kind == "clearinghouseState":
        return market.clearinghouse_state(_user(body), _dex(body))
    if kind == "spotClearinghouseState":
        return market.spot_clearinghouse_state(_user(body))
    if kind == "userNonFundingLedgerUpdates":
        start = _int(body, "startTime", required=True)
        end = _int(body, "endTime", required=False)
        return market.user_non_funding_ledger_updates(_user(body), start or 0, end)
    if kind == "userFunding":
        start = _int(body, "startTime", required=True)
        end = _int(body, "endTime", required=False)
        return market.user_funding(_user(body), start or 0, end)
    raise BadRequest(f"unknown or unsimulated request type {kind!r}; simulated: {SUPPORTED}")


def _corrupt(fills: list[Any]) -> list[Any]:
    if not fills:
        return fills
    fills = list(fills)
    victim = dict(fills[len(fills) // 2]) if isinstance(fills[len(fills) // 2], dict) else {}
    victim["px"] = "not-a-number"
    fills[len(fills) // 2] = victim
    return fills


def create_app(state: SimState) -> Starlette:
    async def info(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object with a `type`")
        except (ValueError, BadRequest) as exc:
            state.log.record(LoggedRequest(now(), client, "invalid", None, 0, 422))
            return Response(f"Failed to deserialize the JSON body: {exc}", status_code=422)
        kind = str(body.get("type"))
        user = body.get("user") if isinstance(body.get("user"), str) else None
        arrived = now()

        def logged(status: int, spent: int = 0) -> None:
            state.log.record(LoggedRequest(arrived, client, kind, user, spent, status))

        plan = state.faults.take(kind, user)
        if plan and plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan and plan.status:
            logged(plan.status)
            headers = (
                {"Retry-After": f"{plan.retry_after:g}"} if plan.retry_after is not None else {}
            )
            return Response(_dumps(None), status_code=plan.status, headers=headers)
        if not state.budget.admits(client, kind):
            logged(429)
            wait = state.budget.retry_after_s(client, kind)
            return Response(_dumps(None), status_code=429, headers={"Retry-After": f"{wait:.3f}"})
        if state.clock is not None:
            state.market.advance(state.clock())
        try:
            data = answer(state.market, body)
        except BadRequest as exc:
            logged(422)
            return Response(f"Failed to deserialize the JSON body: {exc}", status_code=422)
        if state.short_pages is not None and kind == "userFillsByTime":
            data = state.short_pages.cut(data)
        spent = weight(kind, len(data) if isinstance(data, list) else 0)
        state.budget.charge(client, spent)
        if plan and plan.malformed and isinstance(data, list):
            data = _corrupt(data)
        elif plan and plan.malformed and isinstance(data, dict) and data:
            # An account answer whose first field (marginSummary, balances) is not one.
            first = next(iter(data))
            data = {**data, first: "not-valid"}
        content = _dumps(data)
        if plan and plan.truncate:
            content = content[: max(1, len(content) // 2)]
        logged(200, spent)
        # The exchange's clock is the market's, so clients reading `Date` see simulated time.
        date = email.utils.formatdate(state.market.now_ms / 1000, usegmt=True)
        return Response(content, media_type="application/json", headers={"Date": date})

    async def add_fault(request: Request) -> Response:
        try:
            state.faults.add_json(json.loads(await request.body()))
        except (ValueError, TypeError, InvalidFaultPlan) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"pending": state.faults.pending()})

    async def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return JSONResponse({"pending": []})

    async def requests(request: Request) -> Response:
        since = float(request.query_params.get("since", "0") or 0)
        return JSONResponse(state.log.as_json(since))

    async def clear_requests(request: Request) -> Response:
        state.log.clear()
        return JSONResponse({"cleared": True})

    async def clock(request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        target = body.get("now_ms") if isinstance(body, dict) else None
        if not isinstance(target, int):
            return JSONResponse({"error": 'send {"now_ms": <epoch ms>}'}, status_code=422)
        added = state.market.advance(target)
        return JSONResponse({"now_ms": state.market.now_ms, "new_fills": added})

    async def wallets(request: Request) -> Response:
        market = state.market
        return JSONResponse(
            {"now_ms": market.now_ms, "wallets": {w: len(market.fills(w)) for w in market.wallets}}
        )

    return Starlette(
        routes=[
            Route("/info", info, methods=["POST"]),
            Route("/_sim/faults", add_fault, methods=["POST"]),
            Route("/_sim/faults", clear_faults, methods=["DELETE"]),
            Route("/_sim/requests", requests, methods=["GET"]),
            Route("/_sim/requests", clear_requests, methods=["DELETE"]),
            Route("/_sim/clock", clock, methods=["POST"]),
            Route("/_sim/wallets", wallets, methods=["GET"]),
        ]
    )
