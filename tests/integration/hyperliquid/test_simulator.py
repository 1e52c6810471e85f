"""The simulated exchange over HTTP: same answers for the same seed, controls, the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from itertools import count

import httpx
import pytest

from hlsim.server import SimServer
from jobs.hl_parse import parse_fill
from tests.cli import HL_ANALYTICS, run_cli
from tests.simulator import FIXED_NOW_MS, StartSimulator, small_market


def post(server: SimServer, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/info", json=body, timeout=5)


def test_the_same_seed_answers_byte_identical_bodies(start_simulator: StartSimulator) -> None:
    one, two = start_simulator(small_market(21)), start_simulator(small_market(21))
    other = start_simulator(small_market(22))
    for wallet in one.market.wallets:
        body = {"type": "userFillsByTime", "user": wallet, "startTime": 0, "aggregateByTime": False}
        answer = post(one, body)
        assert answer.status_code == 200 and answer.json()
        assert answer.content == post(two, body).content
        assert answer.content != post(other, {**body, "user": other.market.wallets[0]}).content
        assert [parse_fill(raw) for raw in answer.json()]  # every field validates
    assert post(one, {"type": "spotMeta"}).content == post(two, {"type": "spotMeta"}).content


def test_decimals_travel_as_strings_and_ids_as_integers(simulator: SimServer) -> None:
    wallet = simulator.market.wallets[-1]
    fills = post(simulator, {"type": "userFills", "user": wallet}).json()
    assert fills[0]["time"] >= fills[-1]["time"], "userFills answers newest first"
    for raw in fills:
        assert all(isinstance(raw[k], str) for k in ("px", "sz", "fee", "closedPnl"))
        assert all(isinstance(raw[k], int) for k in ("time", "tid", "oid"))


@pytest.mark.parametrize(
    "body",
    [
        {"type": "userFillsByTime", "user": "0x12", "startTime": 0},
        {"type": "userFillsByTime", "user": "0x" + "1" * 40},
        {"type": "userFillsByTime", "user": "0x" + "1" * 40, "startTime": -1},
        {"type": "candleSnapshot"},
        {"type": "meta", "dex": "nope"},
        {"type": "meta", "dex": 1},
        {"type": "userFillsByTime", "user": "0x" + "1" * 40, "startTime": 0, "dex": "nope"},
        ["not", "an", "object"],
    ],
)
def test_bad_requests_get_422(simulator: SimServer, body: object) -> None:
    answer = post(simulator, body)
    assert answer.status_code == 422
    assert "Failed to deserialize" in answer.text


def test_perp_dexs_and_meta_answer_every_dex_at_weight_20(simulator: SimServer) -> None:
    dexs = post(simulator, {"type": "perpDexs"}).json()
    assert dexs[0] is None and [d["name"] for d in dexs[1:]] == ["xyz"]
    tokens = {t["name"]: t["index"] for t in post(simulator, {"type": "spotMeta"}).json()["tokens"]}
    default = post(simulator, {"type": "meta"}).json()
    assert post(simulator, {"type": "meta", "dex": ""}).json() == default
    assert "BTC" in [a["name"] for a in default["universe"]] and default["collateralToken"] == 0
    xyz = post(simulator, {"type": "meta", "dex": "xyz"}).json()
    assert all(a["name"].startswith("xyz:") for a in xyz["universe"]) and xyz["universe"]
    assert xyz["collateralToken"] == tokens["USDH"]
    log = httpx.get(f"{simulator.url}/_sim/requests").json()
    assert {(e["type"], e["weight"]) for e in log} == {
        ("perpDexs", 20),
        ("spotMeta", 20),
        ("meta", 20),
    }


def test_fills_by_time_with_a_dex_answers_only_its_fills(simulator: SimServer) -> None:
    market = simulator.market
    wallet = market.add_wallet()
    for i, coin in enumerate(["BTC", "xyz:TSLA", "@3", "xyz:NVDA", "#10", "PURR/USDC"]):
        market.add_fill(wallet, FIXED_NOW_MS - 1000 + i, coin=coin)
    market.add_dust(wallet, FIXED_NOW_MS - 500, ["PURR/USDC", "@1"])
    body = {"type": "userFillsByTime", "user": wallet, "startTime": 0}
    everything = post(simulator, body).json()
    assert [f["coin"] for f in everything] == [
        "BTC", "xyz:TSLA", "@3", "xyz:NVDA", "#10", "PURR/USDC", "PURR/USDC", "@1"
    ]  # fmt: skip
    assert post(simulator, {**body, "dex": ""}).json() == everything
    scoped = post(simulator, {**body, "dex": "xyz"}).json()
    assert [f["coin"] for f in scoped] == ["xyz:TSLA", "xyz:NVDA"]
    assert {f["feeToken"] for f in scoped} == {"USDH"}
    assert [(f["tid"], f["oid"]) for f in everything[-2:]] == [(0, 0), (0, 0)]


def test_faults_requests_clock_and_wallets_controls(simulator: SimServer) -> None:
    url, wallet = simulator.url, simulator.market.wallets[0]
    bad = httpx.post(f"{url}/_sim/faults", json={"status": 500, "colour": 1})
    assert bad.status_code == 422 and "colour" in bad.json()["error"]
    httpx.post(f"{url}/_sim/faults", json={"status": 503, "retry_after": 2, "type": "spotMeta"})
    answer = post(simulator, {"type": "spotMeta"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert post(simulator, {"type": "spotMeta"}).status_code == 200
    httpx.post(f"{url}/_sim/faults", json={"truncate": True})
    broken = post(simulator, {"type": "userFills", "user": wallet})
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    log = httpx.get(f"{url}/_sim/requests").json()
    assert [(e["type"], e["status"]) for e in log] == [
        ("spotMeta", 503),
        ("spotMeta", 200),
        ("userFills", 200),
    ]
    assert log[1]["weight"] == 20 and log[0]["client"] == "127.0.0.1"
    before = httpx.get(f"{url}/_sim/wallets").json()
    moved = httpx.post(f"{url}/_sim/clock", json={"now_ms": FIXED_NOW_MS + 86_400_000}).json()
    after = httpx.get(f"{url}/_sim/wallets").json()
    assert moved["new_fills"] > 0
    assert sum(after["wallets"].values()) == sum(before["wallets"].values()) + moved["new_fills"]
    assert httpx.delete(f"{url}/_sim/requests").status_code == 200
    assert httpx.get(f"{url}/_sim/requests").json() == []


def test_the_weight_budget_answers_429_with_retry_after(start_simulator: StartSimulator) -> None:
    server = start_simulator(weight_per_minute=1200, weight_capacity=60)
    statuses = [post(server, {"type": "spotMeta"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    answer = post(server, {"type": "spotMeta"})
    assert answer.status_code == 429 and float(answer.headers["Retry-After"]) > 0


def test_a_live_market_keeps_trading(start_simulator: StartSimulator) -> None:
    ticks = count()
    market = small_market(4)
    server = start_simulator(market, clock=lambda: FIXED_NOW_MS + next(ticks) * 3_600_000)
    wallet = market.wallets[-1]
    sizes = [
        len(post(server, {"type": "userFillsByTime", "user": wallet, "startTime": 0}).json())
        for _ in range(3)
    ]
    assert sizes[0] < sizes[1] < sizes[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("stop_signal", "options"), [(signal.SIGINT, []), (signal.SIGTERM, ["--short-pages"])]
)
def test_hl_analytics_simulate_serves_until_stopped(
    stop_signal: signal.Signals, options: list[str]
) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [HL_ANALYTICS, "simulate", "--port", str(port), "--seed", "3", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/info", json={"type": "spotMeta"}, timeout=2
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["universe"]
        wallets = httpx.get(f"http://127.0.0.1:{port}/_sim/wallets").json()["wallets"]
        assert len(wallets) >= 20 and sum(wallets.values()) > 1000
        busiest = max(wallets, key=wallets.__getitem__)
        assert wallets[busiest] > 2000
        page = httpx.post(
            f"http://127.0.0.1:{port}/info",
            json={"type": "userFillsByTime", "user": busiest, "startTime": 0},
        ).json()
        if options:
            assert 500 <= len(page) <= 2000
        else:
            assert len(page) == 2000
    finally:
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"HYPERLIQUID_API_URL=http://127.0.0.1:{port}" in out
    assert out.rstrip().endswith("stopped")


def test_hl_analytics_simulate_on_a_busy_port_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("simulate", "--port", str(taken.getsockname()[1]))
    assert result.code == 1
    assert "cannot listen on 127.0.0.1:" in result.err and "pick another --port" in result.err
