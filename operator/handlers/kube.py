"""The operator's own Kubernetes calls (status patches, access Secrets, credentials).

An aiohttp client on the event loop, logged in the way kopf logs in
(`kopf.login_via_client`: in-cluster service account, else the kubeconfig), so the
operator has one auth source. kopf keeps its own session for watching and Events.
"""

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import quote

import aiohttp
import kopf

from gamevm.models.names import (
    ACCESS_SECRET_HEARTBEAT_TOKEN,
    ACCESS_SECRET_SSH_PRIVATE_KEY,
    ACCESS_SECRET_SSH_PUBLIC_KEY,
    API_VERSION,
    EMULATORCONFIG_PLURAL,
    GAMEVM_KIND,
    GAMEVM_PLURAL,
    GROUP,
    LABEL_GAMEVM,
    LABEL_MANAGED_BY,
    OPERATOR_NAME,
    VERSION,
)
from gamevm.services.access import AccessMaterial
from gamevm.services.authz import Caller, ResourceCheck
from gamevm.services.ports import VMRef

log = logging.getLogger(__name__)

HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"

Login = Callable[[], kopf.ConnectionInfo]
"""Blocking (it reads files, may run a kubeconfig exec plugin): called in a thread."""


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when unknown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def kopf_login(settings: kopf.OperatorSettings) -> Login:
    """kopf's own login for the `kubernetes` library: in-cluster first, then kubeconfig."""

    def login() -> kopf.ConnectionInfo:
        info = kopf.login_via_client(logger=log, settings=settings)
        if info is None:  # only when the `kubernetes` library is missing
            raise kopf.LoginError("the kubernetes library is not installed")
        return info

    return login


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


def _custom(*parts: str) -> str:
    return _path("apis", GROUP, VERSION, *parts)


class Kube:
    """Async Kubernetes calls on one aiohttp session (no threads).

    A 401 logs in again once and repeats the request: a projected service-account token
    is rotated on disk by the kubelet, and kopf re-reads it the same way for its watches.
    """

    def __init__(
        self,
        login: Login,
        *,
        connections: int = 8,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._login = login
        self._connections = connections
        self._timeout = timeout or aiohttp.ClientTimeout(total=60, sock_connect=30)
        self._session: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []
        self._server = ""
        self._login_lock = asyncio.Lock()

    async def _connect(self, refused: aiohttp.ClientSession | None) -> aiohttp.ClientSession:
        """The session; logged in again when `refused` (its credentials got a 401) is current."""
        async with self._login_lock:
            if self._session is not None and self._session is not refused:
                return self._session  # first use, or another request logged in meanwhile
            try:
                info = await asyncio.to_thread(self._login)
                ssl_context = await asyncio.to_thread(info.as_ssl_context)
            except (kopf.LoginError, OSError, ValueError) as exc:
                raise KubeError(0, f"cannot log in: {type(exc).__name__}") from None
            if self._session is not None:
                # Requests in flight finish on it. The one retired at the login before
                # (a token's lifetime ago) has none left: closed, so one is kept at most.
                for stale in self._retired:
                    await stale.close()
                self._retired = [self._session]
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=ssl_context),
                headers={
                    **info.as_http_headers(),
                    # The API server names a writer in managedFields after its User-Agent:
                    # "gamevm-operator", so an e2e test can show it owns no spec field.
                    "User-Agent": OPERATOR_NAME,
                },
                timeout=self._timeout,
            )
            self._server = info.server.rstrip("/")
            return self._session

    async def _request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        content_type: str = JSON,
        decode: bool = True,
    ) -> Any:
        """One call; the decoded answer, or None when `decode` is False.

        A write whose answer is not used is read and dropped undecoded: the API server
        echoes the whole object, and decoding it was paid per status patch of every VM
        (bench/README.md, profile).
        """
        data = None if body is None else json.dumps(body).encode()
        headers = None if body is None else {"Content-Type": content_type}
        session = self._session or await self._connect(None)
        status, reason, payload = await self._send(session, method, path, data, headers)
        if status == HTTP_UNAUTHORIZED:
            # Expired credentials (a rotated service-account token): log in once more.
            session = await self._connect(session)
            status, reason, payload = await self._send(session, method, path, data, headers)
        if not 200 <= status < 300:
            # The status line only: an error body can echo what was sent.
            raise KubeError(status, f"{status} {reason}")
        return json.loads(payload) if decode else None

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        data: bytes | None,
        headers: dict[str, str] | None,
    ) -> tuple[int, str, bytes]:
        try:
            async with session.request(
                method, self._server + path, data=data, headers=headers
            ) as response:
                return response.status, response.reason or "", await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The API server is unreachable (restarting, network): a retryable failure.
            raise KubeError(0, f"API server unreachable: {type(exc).__name__}") from None

    async def patch_gamevm_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource."""
        await self._request(
            "PATCH",
            _custom("namespaces", namespace, GAMEVM_PLURAL, name, "status"),
            {"status": status},
            content_type=MERGE_PATCH,
            decode=False,
        )

    async def patch_gamevm_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        """Merge-patch metadata.annotations (None removes a key). Never touches spec."""
        await self._request(
            "PATCH",
            _custom("namespaces", namespace, GAMEVM_PLURAL, name),
            {"metadata": {"annotations": dict(annotations)}},
            content_type=MERGE_PATCH,
            decode=False,
        )

    async def patch_emulatorconfig_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge-patch an EmulatorConfig's status."""
        await self._request(
            "PATCH",
            _custom(EMULATORCONFIG_PLURAL, name, "status"),
            {"status": status},
            content_type=MERGE_PATCH,
            decode=False,
        )

    async def _list(self, plural: str) -> tuple[list[dict[str, Any]], str | None]:
        listing = cast("dict[str, Any]", await self._request("GET", _custom(plural)))
        version = listing.get("metadata", {}).get("resourceVersion")
        # resourceVersion is opaque (equality only): passed on as the string it is.
        return list(listing.get("items") or []), str(version) if version else None

    async def list_gamevms(self) -> tuple[list[dict[str, Any]], str | None]:
        """Every GameVM in the cluster and the LIST's resourceVersion (for the mirror's resync)."""
        return await self._list(GAMEVM_PLURAL)

    async def list_emulatorconfigs(self) -> tuple[list[dict[str, Any]], str | None]:
        """Every EmulatorConfig and the LIST's resourceVersion (for the mirror's resync)."""
        return await self._list(EMULATORCONFIG_PLURAL)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """Decoded data of one Secret the operator is allowed to read, or None if absent."""
        try:
            secret = await self._request(
                "GET", _path("api", "v1", "namespaces", namespace, "secrets", name)
            )
        except KubeError as exc:
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise
        data = cast("dict[str, str]", secret.get("data") or {})
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    async def create_access_secret(
        self, ref: VMRef, secret_name: str, material: AccessMaterial
    ) -> bool:
        """Create the per-VM Secret owned by the GameVM; False when it already existed."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "namespace": ref.namespace,
                "labels": {LABEL_MANAGED_BY: OPERATOR_NAME, LABEL_GAMEVM: ref.name},
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": GAMEVM_KIND,
                        "name": ref.name,
                        "uid": ref.uid,
                        "controller": True,
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "type": "Opaque",
            "stringData": {
                ACCESS_SECRET_SSH_PRIVATE_KEY: material.ssh_private_key,
                ACCESS_SECRET_SSH_PUBLIC_KEY: material.ssh_public_key,
                ACCESS_SECRET_HEARTBEAT_TOKEN: material.heartbeat_token,
            },
        }
        try:
            # The response echoes the Secret; it is dropped undecoded and never logged.
            await self._request(
                "POST",
                _path("api", "v1", "namespaces", ref.namespace, "secrets"),
                body,
                decode=False,
            )
        except KubeError as exc:
            if exc.status == HTTP_CONFLICT:
                return False
            raise
        return True

    async def review_token(self, token: str) -> Caller | None:
        """TokenReview: who the API server says presents `token` (None: not accepted)."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        # The response echoes the token in spec: only status is read, nothing is logged.
        result = await self._request(
            "POST", _path("apis", "authentication.k8s.io", "v1", "tokenreviews"), body
        )
        status = result.get("status") or {}
        user = status.get("user")
        if not status.get("authenticated") or not user:
            return None
        return Caller(
            username=user.get("username") or "",
            uid=user.get("uid") or "",
            groups=tuple(user.get("groups") or ()),
            extra={k: tuple(v or ()) for k, v in (user.get("extra") or {}).items()},
        )

    async def review_access(self, caller: Caller, check: ResourceCheck) -> bool:
        """SubjectAccessReview for `caller` (what `kubectl auth can-i --as` asks)."""
        attributes = {
            "group": check.group,
            "resource": check.resource,
            "verb": check.verb,
            "namespace": check.namespace or None,
            "name": check.name or None,
        }
        spec = {
            "user": caller.username,
            "uid": caller.uid or None,
            "groups": list(caller.groups),
            "extra": {k: list(v) for k, v in caller.extra.items()} or None,
            "resourceAttributes": {k: v for k, v in attributes.items() if v is not None},
        }
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {k: v for k, v in spec.items() if v is not None},
        }
        result = await self._request(
            "POST", _path("apis", "authorization.k8s.io", "v1", "subjectaccessreviews"), body
        )
        return bool((result.get("status") or {}).get("allowed"))

    async def aclose(self) -> None:
        """Close the sessions."""
        sessions, self._retired = [*self._retired, self._session], []
        self._session = None
        for session in sessions:
            if session is not None:
                await session.close()


class KubeAccessSecrets:
    """services.ports.AccessSecrets over the Kubernetes API."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def create(self, ref: VMRef, secret_name: str, material: AccessMaterial) -> bool:
        """Create the Secret owned by the GameVM; False when one of that name exists."""
        return await self._kube.create_access_secret(ref, secret_name, material)


class KubeSecretReader:
    """services.configuration.SecretReader: Secrets in the operator's own namespace.

    Only Secrets named in the Role `gamevm-operator-credentials` are readable (RBAC): a
    forbidden one reads as None, and the GameVM says which Secret to allow.
    """

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace

    async def read(self, name: str) -> dict[str, str] | None:
        """The Secret's decoded data, or None when missing or forbidden."""
        try:
            return await self._kube.read_secret_data(self._namespace, name)
        except KubeError as exc:
            if exc.status == HTTP_FORBIDDEN:
                return None
            raise
