"""While ``ray.init`` starts Ray, a SIGTERM still takes vwbench's Ctrl-C path (Ray's Python
handler would ``sys.exit(15)`` without cleanup), and an interrupted or failed start stops what it
started. Ray itself is replaced by a stand-in here: starting it takes tens of seconds."""

from __future__ import annotations

import signal
import sys
import types

import pytest

from vwbench.executors import ray_executor
from vwbench.interrupts import route_sigterm, sigterm_routed


def _fake_ray(init):
    calls: list[str] = []

    def set_sigterm_handler(handler):
        calls.append("ray's handler installed")
        signal.signal(signal.SIGTERM, handler)

    ray = types.SimpleNamespace(_private=types.SimpleNamespace(utils=types.SimpleNamespace(set_sigterm_handler=set_sigterm_handler)))
    ray.init = lambda **kwargs: init(ray, calls, kwargs)
    ray.shutdown = lambda: calls.append("shutdown")
    return ray, calls, set_sigterm_handler


def _ray_like_init(ray, calls, kwargs):
    ray._private.utils.set_sigterm_handler(lambda signum, frame: sys.exit(signum))  # what ray.init does first
    calls.append(f"init {kwargs}")


@pytest.fixture
def default_sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_ray_init_keeps_the_route_and_restores_rays_helper(default_sigterm) -> None:
    assert route_sigterm() and sigterm_routed()
    ray, calls, original = _fake_ray(_ray_like_init)
    ray_executor._init(ray, address="local")
    assert sigterm_routed() and calls == ["init {'address': 'local'}"]
    assert ray._private.utils.set_sigterm_handler is original  # Ray's helper is its own again


def test_without_the_route_ray_init_is_left_alone(default_sigterm) -> None:
    ray, calls, _ = _fake_ray(_ray_like_init)
    ray_executor._init(ray, address="local")
    assert calls == ["ray's handler installed", "init {'address': 'local'}"] and not sigterm_routed()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ConnectionError])
def test_an_interrupted_or_failed_start_is_shut_down(default_sigterm, stop) -> None:
    route_sigterm()

    def interrupted(ray, calls, kwargs):
        calls.append("starting")
        raise stop("stopped half-way")

    ray, calls, _ = _fake_ray(interrupted)
    with pytest.raises(stop):
        ray_executor._init(ray, address="local")
    assert calls == ["starting", "shutdown"] and sigterm_routed()


def test_a_ray_without_the_private_helper_still_starts(default_sigterm) -> None:
    route_sigterm()
    started = []
    ray = types.SimpleNamespace(init=lambda **kwargs: started.append(kwargs), shutdown=lambda: None)
    ray_executor._init(ray, address="local")
    assert started == [{"address": "local"}]
