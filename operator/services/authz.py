"""Who may read what through the read API: the kube-rbac-proxy pattern.

A caller presents a Kubernetes bearer token (a ServiceAccount token, an OIDC token, ...).
The API server says who it is (TokenReview) and whether that identity may `get` the
GameVM a document describes (SubjectAccessReview). So the read API shows exactly what
`kubectl get gamevm` would, and RBAC stays the one place access is granted.

Both answers are cached briefly (by a hash of the token; by identity and object), so a
polling dashboard costs the API server a review every few seconds, not one per request.
"""

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from gamevm.models.names import GAMEVM_PLURAL, GROUP

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Caller:
    """An authenticated identity, as TokenReview reported it."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def cache_key(self) -> tuple[object, ...]:
        """Everything a SubjectAccessReview decision depends on."""
        return (self.username, self.uid, self.groups, tuple(sorted(self.extra.items())))


@dataclass(frozen=True)
class ResourceCheck:
    """One `verb` on GameVMs: a namespace ("" = every namespace) and a name ("" = any)."""

    namespace: str
    name: str = ""
    verb: str = "get"
    group: str = GROUP
    resource: str = GAMEVM_PLURAL


class ReviewClient(Protocol):
    """The API server's TokenReview and SubjectAccessReview."""

    async def review_token(self, token: str) -> Caller | None:
        """The identity behind a token, or None when the API server does not accept it."""
        ...

    async def review_access(self, caller: Caller, check: ResourceCheck) -> bool:
        """Whether RBAC (or the cluster's authorizer) allows it."""
        ...


class TTLCache(Generic[K, V]):
    """A small bounded cache whose entries expire (oldest evicted first when full)."""

    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value)."""
        item = self._items.get(key)
        if item is None:
            return False, None
        expires, value = item
        if expires <= self._clock():
            del self._items[key]
            return False, None
        return True, value

    def put(self, key: K, value: V) -> None:
        """Store `value` for the cache's TTL."""
        self._items[key] = (self._clock() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class Authorizer:
    """TokenReview + SubjectAccessReview with short-lived caches."""

    def __init__(
        self,
        client: ReviewClient,
        *,
        ttl: float = 10.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._tokens: TTLCache[str, Caller | None] = TTLCache(ttl, max_entries, clock)
        self._decisions: TTLCache[tuple[object, ...], bool] = TTLCache(ttl, max_entries, clock)

    async def authenticate(self, token: str) -> Caller | None:
        """Who presents this token (None: nobody the API server knows)."""
        # The token itself is never kept, only its digest.
        key = hashlib.sha256(token.encode()).hexdigest()
        found, caller = self._tokens.get(key)
        if not found:
            caller = await self._client.review_token(token)
            self._tokens.put(key, caller)
        return caller

    async def allowed(self, caller: Caller, check: ResourceCheck) -> bool:
        """Whether `caller` may do `check` (cached)."""
        key = (*caller.cache_key(), check)
        found, decision = self._decisions.get(key)
        if not found or decision is None:
            decision = await self._client.review_access(caller, check)
            self._decisions.put(key, decision)
        return decision

    async def may_get_gamevm(self, caller: Caller, namespace: str | None, name: str) -> bool:
        """`kubectl get gamevm <name> -n <namespace>` would be allowed.

        A namespace-wide grant answers for every VM in it (one review per namespace);
        otherwise the review names the object, so resourceNames rules apply too.
        """
        if not namespace:
            return await self.allowed(caller, ResourceCheck(namespace=""))
        if await self.allowed(caller, ResourceCheck(namespace=namespace)):
            return True
        return await self.allowed(caller, ResourceCheck(namespace=namespace, name=name))
