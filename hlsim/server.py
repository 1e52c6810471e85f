"""Serving the simulated exchange: in a background thread, or as `hl-analytics simulate`.

uvicorn serves the Starlette app. `SimServer` binds its socket itself (port 0
picks a free one) and runs uvicorn in a daemon thread, which is how tests and
the demo embed the exchange in their own process.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from types import TracebackType

import uvicorn

from hl_core.errors import HLAnalyticsError
from hlsim import nodefiles
from hlsim.app import SimState, create_app
from hlsim.faults import ShortPages
from hlsim.market import Market
from hlsim.weights import WeightBudget

log = logging.getLogger(__name__)

DEMO_WALLETS = 30
DEMO_DAYS = 7
PROGRESS_EVERY_S = 30.0


class PortUnavailable(HLAnalyticsError):
    """The simulated exchange cannot listen on that address: pick another --port."""


class BadBudget(HLAnalyticsError):
    """--weight-per-minute must be a positive whole number."""


def wall_ms() -> int:
    return int(time.time() * 1000)


class SimServer:
    """The simulated exchange on 127.0.0.1 (or `host`), in a thread; use as a context manager."""

    def __init__(self, state: SimState, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            create_app(state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            date_header=False,  # the app sends the market's clock instead
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True, name="hlsim"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def market(self) -> Market:
        return self.state.market

    def start(self, timeout_s: float = 10.0) -> SimServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the simulated exchange did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def demo_market(seed: int, *, wallets: int = DEMO_WALLETS, days: float = DEMO_DAYS) -> Market:
    """A few dozen wallets with a week of history up to now, trading on in real time."""
    return Market.generate(
        seed, wallets=wallets, days=days, now_ms=wall_ms(), fills_per_day=(5, 600)
    )


def simulate(
    *,
    host: str,
    port: int,
    seed: int,
    weight_per_minute: int,
    short_pages: bool = False,
    node_dir: str | None = None,
    archive_dir: str | None = None,
) -> int:
    """`hl-analytics simulate`: serve a live demo market until interrupted; with
    `node_dir`, also write its fills in real time as a node does (hlsim.nodefiles);
    with `archive_dir`, first write its whole past hours as the public archive."""
    print(f"generating the market (seed {seed}) …", flush=True)
    market = demo_market(seed)
    if weight_per_minute <= 0:
        raise BadBudget()
    started_ms = market.now_ms
    if archive_dir:
        files = nodefiles.write_archive(
            market, archive_dir, started_ms - int(DEMO_DAYS * nodefiles.DAY_MS), started_ms
        )
        print(f"wrote {len(files)} archived hour(s) of fills under {archive_dir}", flush=True)
    writer = nodefiles.NodeWriter(market, node_dir, start_ms=started_ms) if node_dir else None
    state = SimState(
        market,
        clock=wall_ms,
        budget=WeightBudget(weight_per_minute),
        short_pages=ShortPages(seed) if short_pages else None,
    )
    try:
        server = SimServer(state, host=host, port=port)
    except OSError as exc:
        raise PortUnavailable(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
        ) from None
    with server:
        # Before the line that says Ctrl+C stops it: a Ctrl+C right after it must stop it.
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        total = sum(len(market.fills(w)) for w in market.wallets)
        print(
            f"simulated Hyperliquid API on {server.url}: "
            f"{len(market.wallets)} wallets, {total} fills"
            + (", fill pages cut short at random" if state.short_pages else "")
        )
        for address in market.wallets:
            print(f"  {address}  {len(market.fills(address))} fills")
        print(
            f"point the system at it: HYPERLIQUID_API_URL={server.url}   (Ctrl+C stops it)",
            flush=True,
        )
        if writer is not None:
            nodefiles.run_writer(writer, wall_ms, stop)
            print(f"writing the node's fill files under {node_dir}", flush=True)
        served = 0
        while not stop.wait(PROGRESS_EVERY_S):
            entries = state.log.entries()
            log.info(
                "%d requests in the last %.0fs, %d answered 429",
                len(entries) - served,
                PROGRESS_EVERY_S,
                sum(1 for e in entries[served:] if e.status == 429),
                extra={"action": "sim_progress"},
            )
            served = len(entries)
        print("stopped", flush=True)
    return 0
