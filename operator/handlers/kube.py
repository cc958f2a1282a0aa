"""The operator's own Kubernetes calls (status patches, access Secrets, credentials).

The `kubernetes` client is synchronous, so every call runs in a dedicated thread pool and
never blocks the event loop. kopf keeps its own client for watching and Events.
"""

import asyncio
import base64
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

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

T = TypeVar("T")

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_FORBIDDEN = 403


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when unknown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def load_api_client(threads: int) -> client.ApiClient:
    """In-cluster config when running in a pod, the kubeconfig otherwise."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # One pooled connection per worker thread: the default pool of 10 would drop and
    # re-open TLS connections under load.
    configuration.connection_pool_maxsize = threads
    api = client.ApiClient(configuration)
    # The API server names a writer in managedFields after its User-Agent: "gamevm-operator"
    # (not the generic "OpenAPI-Generator"), so an e2e test can show it owns no spec field.
    api.user_agent = OPERATOR_NAME
    return api


def _drained(fn: Callable[..., Any], *args: Any) -> None:
    """Call `fn` without decoding its response: read the body and free the connection."""
    response = fn(*args, _preload_content=False)
    try:
        response.read()
    finally:
        response.release_conn()


class Kube:
    """Async facade over the sync client, with its own bounded thread pool."""

    def __init__(self, api: client.ApiClient, threads: int = 16) -> None:
        self._api = api
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except ApiException as exc:
            raise KubeError(exc.status or 0, f"{exc.status} {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The API server is unreachable (restarting, network): a retryable failure.
            raise KubeError(0, f"API server unreachable: {type(exc).__name__}") from None

    async def _write(self, fn: Callable[..., Any], *args: Any) -> None:
        """A write whose answer is not used: its body is drained undecoded.

        The API server echoes the whole object; decoding it (JSON, then the client's
        models) on a worker thread, which holds the GIL the event loop needs, was paid
        per status patch of every VM (bench/README.md, profile).
        """
        await self._run(_drained, fn, *args)

    async def patch_gamevm_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource."""
        await self._write(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            GAMEVM_PLURAL,
            name,
            {"status": status},
        )

    async def patch_gamevm_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        """Merge-patch metadata.annotations (None removes a key). Never touches spec."""
        await self._write(
            self._custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            GAMEVM_PLURAL,
            name,
            {"metadata": {"annotations": dict(annotations)}},
        )

    async def patch_emulatorconfig_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge-patch an EmulatorConfig's status."""
        await self._write(
            self._custom.patch_cluster_custom_object_status,
            GROUP,
            VERSION,
            EMULATORCONFIG_PLURAL,
            name,
            {"status": status},
        )

    async def gamevm_pages(self, limit: int | None) -> AsyncIterator[list[dict[str, Any]]]:
        """Every GameVM in the cluster, `limit` at a time (one consistent LIST through its
        continue tokens; None: one page). An expired token (410) raises KubeError."""
        token: str | None = None
        while True:
            paging: dict[str, Any] = {}
            if limit:
                paging["limit"] = limit
            if token:
                paging["_continue"] = token
            result = await self._run(
                self._custom.list_cluster_custom_object, GROUP, VERSION, GAMEVM_PLURAL, **paging
            )
            listing = cast("dict[str, Any]", result)
            yield list(listing.get("items", []))
            token = listing.get("metadata", {}).get("continue")
            if not token:
                return

    async def list_emulatorconfigs(self) -> tuple[list[dict[str, Any]], str | None]:
        """Every EmulatorConfig and the LIST's resourceVersion (for the mirror's resync)."""
        result = await self._run(
            self._custom.list_cluster_custom_object, GROUP, VERSION, EMULATORCONFIG_PLURAL
        )
        listing = cast("dict[str, Any]", result)
        version = listing.get("metadata", {}).get("resourceVersion")
        # resourceVersion is opaque (equality only): passed on as the string it is.
        return list(listing.get("items", [])), str(version) if version else None

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """Decoded data of one Secret the operator is allowed to read, or None if absent."""
        try:
            secret = await self._run(self._core.read_namespaced_secret, name, namespace)
        except KubeError as exc:
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise
        data = secret.data or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    async def create_access_secret(
        self, ref: VMRef, secret_name: str, material: AccessMaterial
    ) -> bool:
        """Create the per-VM Secret owned by the GameVM; False when it already existed."""
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=secret_name,
                namespace=ref.namespace,
                labels={LABEL_MANAGED_BY: OPERATOR_NAME, LABEL_GAMEVM: ref.name},
                owner_references=[
                    client.V1OwnerReference(
                        api_version=API_VERSION,
                        kind=GAMEVM_KIND,
                        name=ref.name,
                        uid=ref.uid,
                        controller=True,
                        block_owner_deletion=False,
                    )
                ],
            ),
            type="Opaque",
            string_data={
                ACCESS_SECRET_SSH_PRIVATE_KEY: material.ssh_private_key,
                ACCESS_SECRET_SSH_PUBLIC_KEY: material.ssh_public_key,
                ACCESS_SECRET_HEARTBEAT_TOKEN: material.heartbeat_token,
            },
        )
        try:
            # The response echoes the Secret; it is dropped here and never logged.
            await self._write(self._core.create_namespaced_secret, ref.namespace, body)
        except KubeError as exc:
            if exc.status == HTTP_CONFLICT:
                return False
            raise
        return True

    async def review_token(self, token: str) -> Caller | None:
        """TokenReview: who the API server says presents `token` (None: not accepted)."""
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        # The response echoes the token in spec: only status is read, nothing is logged.
        result = await self._run(self._authn.create_token_review, body)
        status = result.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return Caller(
            username=user.username or "",
            uid=user.uid or "",
            groups=tuple(user.groups or ()),
            extra={k: tuple(v) for k, v in (user.extra or {}).items()},
        )

    async def review_access(self, caller: Caller, check: ResourceCheck) -> bool:
        """SubjectAccessReview for `caller` (what `kubectl auth can-i --as` asks)."""
        body = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=caller.username,
                uid=caller.uid or None,
                groups=list(caller.groups),
                extra={k: list(v) for k, v in caller.extra.items()} or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=check.group,
                    resource=check.resource,
                    verb=check.verb,
                    namespace=check.namespace or None,
                    name=check.name or None,
                ),
            )
        )
        result = await self._run(self._authz.create_subject_access_review, body)
        return bool(result.status and result.status.allowed)

    async def aclose(self) -> None:
        """Stop the thread pool and close the client."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._api.close)


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
