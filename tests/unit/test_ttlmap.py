"""graph.ttlmap: entries expire, and a full map pushes out its oldest entries only."""

from __future__ import annotations

from graph.ttlmap import MISSING, TtlMap


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_none_is_a_value() -> None:
    clock = Clock()
    cache: TtlMap[str, int | None] = TtlMap(10, ttl_s=5, clock=clock)
    cache.put("a", 1)
    cache.put("nobody", None, ttl_s=1)
    assert cache.get("a") == 1
    assert cache.get("nobody") is None
    assert cache.get("b") is MISSING
    clock.now = 1
    assert cache.get("nobody") is MISSING
    assert cache.get("a") == 1
    clock.now = 5
    assert cache.get("a") is MISSING
    assert len(cache) == 0


def test_a_full_map_drops_its_oldest_entry_not_everything() -> None:
    clock = Clock()
    cache: TtlMap[int, int] = TtlMap(3, ttl_s=100, clock=clock)
    for key in range(3):
        cache.put(key, key)
    cache.put(0, 0)  # refreshed: now the newest
    cache.put(3, 3)
    assert [cache.get(k) for k in range(4)] == [0, MISSING, 2, 3]
    assert len(cache) == 3


def test_a_full_map_also_drops_the_expired_entries_behind_the_oldest() -> None:
    clock = Clock()
    cache: TtlMap[int, int] = TtlMap(3, clock=clock)
    cache.put(0, 0, ttl_s=1)
    cache.put(1, 1, ttl_s=1)
    cache.put(2, 2, ttl_s=100)
    clock.now = 2
    cache.put(3, 3)
    assert len(cache) == 2
    assert [cache.get(k) for k in range(4)] == [MISSING, MISSING, 2, 3]
