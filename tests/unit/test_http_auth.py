"""The API port's authentication over real HTTP (aiohttp test server, fake reviews)."""

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gamevm.handlers.context import AppContext
from gamevm.handlers.http import build_api_app, build_ops_app
from gamevm.services.access import KeyRing, derive_heartbeat_token
from gamevm.services.authz import Authorizer, Caller, ResourceCheck
from gamevm.services.ratelimit import SourceRateLimiter
from gamevm.settings import Settings

KEY = b"m" * 32
UID = "7c0e8a40-0000-4000-8000-000000000001"


class FakeReviews:
    """TokenReview/SubjectAccessReview: token 'alice' may get GameVMs in 'team-a'."""

    def __init__(self) -> None:
        self.token_reviews = 0
        self.access_reviews = 0

    async def review_token(self, token: str) -> Caller | None:
        self.token_reviews += 1
        return Caller("alice", groups=("dev",)) if token == "alice" else None

    async def review_access(self, caller: Caller, check: ResourceCheck) -> bool:
        self.access_reviews += 1
        return caller.username == "alice" and check.namespace == "team-a"


def _context(**settings: Any) -> AppContext:
    context = AppContext(
        settings=Settings(**settings),
        kube=cast("Any", None),
        providers={},
        budgets={},
        reconciler=cast("Any", None),
        wolf=cast("Any", None),
        mirror=None,
        keys=KeyRing("default", {"default": KEY}),
    )
    context.uids["team-a/vm"] = UID
    context.runtime(UID)
    return context


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestClient[Any, Any], AppContext]]:
    context = _context(heartbeat_burst=100)
    app = build_api_app(context, Authorizer(FakeReviews()))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, context


async def test_heartbeat_gives_one_401_for_unknown_vm_and_wrong_token(
    api: tuple[TestClient[Any, Any], AppContext],
) -> None:
    client, context = api
    good = derive_heartbeat_token(KEY, UID)
    answers = []
    for path, token in [
        ("/v1/gamevms/team-a/vm/activity", "wrong"),
        ("/v1/gamevms/team-a/nope/activity", good),
        ("/v1/gamevms/team-b/vm/activity", good),
        ("/v1/gamevms/team-a/vm/activity", None),
    ]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await client.post(path, headers=headers)
        answers.append((response.status, await response.text()))
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == 401
    assert context.runtimes[UID].heartbeat is None
    response = await client.post(
        "/v1/gamevms/team-a/vm/activity", headers={"Authorization": f"Bearer {good}"}
    )
    assert response.status == 200
    assert context.runtimes[UID].heartbeat is not None


async def test_heartbeat_is_rate_limited_per_source() -> None:
    context = _context(heartbeat_rate_per_second=0.5, heartbeat_burst=3)
    app = build_api_app(context, Authorizer(FakeReviews()))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        codes = [(await client.post("/v1/gamevms/team-a/vm/activity")).status for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]


def test_rate_limiter_refills_and_bounds_memory() -> None:
    now = [0.0]
    limiter = SourceRateLimiter(1.0, 2, max_sources=2, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 1.0]
    now[0] = 1.0
    assert limiter.acquire("a") == 0.0
    limiter.acquire("b")
    limiter.acquire("c")
    assert len(limiter._buckets) == 2


async def test_authorizer_caches_reviews_briefly() -> None:
    now = [0.0]
    reviews = FakeReviews()
    authorizer = Authorizer(reviews, ttl=10.0, clock=lambda: now[0])
    for _ in range(3):
        caller = await authorizer.authenticate("alice")
        assert caller is not None
        assert await authorizer.may_get_gamevm(caller, "team-a", "vm")
        assert not await authorizer.may_get_gamevm(caller, "team-b", "vm")
    assert reviews.token_reviews == 1
    assert await authorizer.authenticate("mallory") is None
    now[0] = 11.0
    await authorizer.authenticate("alice")
    assert reviews.token_reviews == 3


async def test_ops_port_has_no_api_and_api_port_no_metrics() -> None:
    context = _context()
    context.ready = True
    async with TestClient(TestServer(build_ops_app(context), host="127.0.0.1")) as ops:
        assert (await ops.get("/healthz")).status == 200
        assert (await ops.post("/v1/gamevms/team-a/vm/activity")).status == 404
    api_app = build_api_app(context, Authorizer(FakeReviews()))
    async with TestClient(TestServer(api_app, host="127.0.0.1")) as api_client:
        assert (await api_client.get("/metrics")).status == 404


async def test_heartbeats_verify_with_the_vms_own_key_after_rotation() -> None:
    old, new = b"1" * 32, b"2" * 32
    context = _context(heartbeat_burst=100)
    context.keys = KeyRing("k2", {"k1": old, "k2": new})
    context.runtime(UID).access_key_id = "k1"
    app = build_api_app(context, Authorizer(FakeReviews()))
    path = "/v1/gamevms/team-a/vm/activity"
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for key, expected in ((old, 200), (new, 401)):
            token = derive_heartbeat_token(key, UID)
            response = await client.post(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status == expected
        context.keys = KeyRing("k2", {"k2": new})  # k1 removed: its VMs stop verifying
        token = derive_heartbeat_token(old, UID)
        response = await client.post(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401
