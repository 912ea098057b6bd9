"""The chain view's TTL cache loads each key once at a time: a busy entry expiring under load
(the chain head, once a second) is asked of the chain once, not by every request in flight."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.readmodel.chain_view import TTLCache


def test_while_one_thread_reloads_an_expired_entry_the_others_get_the_old_value() -> None:
    cache = TTLCache(ttl=0.0)  # every entry expired as soon as it is stored
    assert cache.get("head", lambda: 1) == 1
    loading, release = threading.Event(), threading.Event()

    def slow_load() -> int:
        loading.set()
        release.wait(30)
        return 2

    with ThreadPoolExecutor(1) as pool:
        reloaded = pool.submit(cache.get, "head", slow_load)
        assert loading.wait(30)
        calls: list[int] = []

        def load_again() -> int:
            calls.append(1)
            return 3

        assert cache.get("head", load_again) == 1  # not loaded again: the old value
        assert calls == []
        release.set()
        assert reloaded.result(30) == 2


def test_concurrent_first_reads_of_a_key_share_one_load() -> None:
    cache = TTLCache(ttl=60.0)
    release = threading.Event()
    loads: list[int] = []

    def load() -> str:
        loads.append(1)
        release.wait(30)
        return "value"

    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(cache.get, "org", load) for _ in range(8)]
        release.set()
        assert [a.result(30) for a in answers] == ["value"] * 8
    assert loads == [1]


def test_a_failed_load_is_raised_and_the_next_read_loads_again() -> None:
    cache = TTLCache(ttl=60.0)

    def broken() -> int:
        raise ConnectionError("chain unreachable")

    with pytest.raises(ConnectionError):
        cache.get("org", broken)
    assert cache.get("org", lambda: 7) == 7


def test_the_cache_keeps_at_most_size_entries_dropping_the_oldest() -> None:
    cache = TTLCache(ttl=60.0, size=2)
    for key in ("a", "b", "c"):
        cache.get(key, key.upper)
    calls: list[str] = []

    def reload_a() -> str:
        calls.append("a")
        return "A2"

    assert cache.get("a", reload_a) == "A2" and calls == ["a"]  # "a" was dropped
    assert cache.get("c", lambda: "never") == "C"


def test_expired_entries_leave_when_others_are_stored() -> None:
    cache = TTLCache(ttl=0.0, size=1_000)  # every entry expired as soon as it is stored
    for key in range(50):
        assert cache.get(key, lambda key=key: key * 2) == key * 2  # type: ignore[misc]
    assert len(cache) == 1  # only the one just stored, not 50 of the 1,000 allowed
    fresh = TTLCache(ttl=60.0, size=3)
    for key in range(5):
        fresh.get(key, lambda: None)
    assert len(fresh) == 3  # unexpired entries leave by size, oldest first


def test_values_put_by_the_caller_are_served_and_missing_lists_what_is_not_cached() -> None:
    cache = TTLCache(ttl=60.0, size=10)
    cache.put("a", 1)
    assert cache.missing(["a", "b"]) == ["b"]
    assert cache.get("a", lambda: 2) == 1
    expiring = TTLCache(ttl=0.0, size=10)  # every entry expired as soon as it is stored
    expiring.put("a", 1)
    assert expiring.missing(["b", "a"]) == ["b", "a"]
    assert expiring.get("a", lambda: 2) == 2
