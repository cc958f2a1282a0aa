"""TensorDock adapter on the v2 API (reference/providers.md section 1b).

Bearer auth; one aiohttp session; token bucket at `tensordock_requests_per_minute`;
bounded full-jitter retries (see httpclient). Instances are created on a specific
hostnode with a dedicated IP (Wolf needs fixed ports) and found again by their
deterministic name, so a crash between create and the status write never makes a second
instance.
"""

import asyncio
import logging
from dataclasses import replace
from typing import Any

from gamevm.models.enums import CloudProvider, GpuTier
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    Offer,
    OfferRequest,
    ProviderError,
)
from gamevm.providers.httpclient import (
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    TokenBucket,
    full_jitter,
    parse_retry_after,
)
from gamevm.providers.locations import city_table
from gamevm.providers.tensordock.api import (
    OfferContext,
    build_offers,
    embedded_error_status,
    error_for,
    is_already_gone,
    is_already_in_state,
    is_gone_status,
    map_status,
    parse_hostnodes,
    parse_instance,
    parse_instance_list,
    parse_json,
    parse_locations,
)

log = logging.getLogger(__name__)


class TensorDockProvider:
    """The `tensordock` provider."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        timeout: float,
        policy: RetryPolicy,
        requests_per_minute: int,
        image: str = "ubuntu2404",
        storage_gb: int = 100,
    ) -> None:
        self._client = JsonHttpClient(
            api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=timeout,
            policy=policy,
            bucket=TokenBucket(requests_per_minute),
            provider_label="TensorDock",
        )
        self._policy = policy
        self._image = image
        self._storage_gb = storage_gb

    @property
    def name(self) -> CloudProvider:
        """Which CloudProvider this adapter serves."""
        return CloudProvider.TENSORDOCK

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._client.aclose()

    # -- calls -----------------------------------------------------------------------

    def _fail(self, response: HttpResponse, what: str) -> ProviderError:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return error_for(_status(response), response.text, what, retry_after)

    async def _get_json(self, path: str, what: str) -> Any:
        response = await self._client.request("GET", path)
        if _status(response) >= 400:
            raise self._fail(response, what)
        return parse_json(response.text, what)

    # -- Provider protocol -----------------------------------------------------------

    async def offers(self, request: OfferRequest) -> list[Offer]:
        """Placements from /locations and /hostnodes (all regions: selection filters)."""
        locations_body, hostnodes_body = await asyncio.gather(
            self._get_json("locations", "list locations"),
            self._get_json("hostnodes", "list hostnodes"),
        )
        ctx = OfferContext(
            preset=request.preset,
            resources=request.resources,
            storage_gb=self._storage_gb,
            cities=city_table(),
        )
        return build_offers(parse_locations(locations_body), parse_hostnodes(hostnodes_body), ctx)

    async def find(self, name: str) -> Instance | None:
        """The instance named `name` (deterministic), or None."""
        body = await self._get_json("instances", "list instances")
        for summary in parse_instance_list(body):
            if summary.name == name and not is_gone_status(summary.status):
                return await self.observe(summary.id)
        return None

    async def list_instances(self) -> list[Instance] | None:
        """GET /instances: id, name and state of every instance (the documented list has
        no IP: entries that carry one, in any of the three shapes, keep it and its ports)."""
        body = await self._get_json("instances", "list instances")
        return [
            Instance(
                instance_id=summary.id,
                name=summary.name,
                state=map_status(summary.status),
                ip_address=summary.ip_address,
                ports=summary.ports,
                metadata={"status": summary.status},
            )
            for summary in parse_instance_list(body)
            if not is_gone_status(summary.status)
        ]

    async def create(self, spec: CreateSpec) -> Instance:
        """Find by name first, then POST /instances; look again after an ambiguous failure.

        POST is not idempotent: after a timeout, dropped connection or 5xx the server may
        have created the instance, so each retry starts with a lookup by name.
        """
        attempt = 0
        while True:
            # The budget layer found the name absent in a fresh list: skip the first look.
            if attempt > 0 or not spec.absent_checked:
                existing = await self.find(spec.name)
                if existing is not None:
                    return existing
            try:
                return await self._post_instance(spec)
            except ProviderError as exc:
                if not exc.retryable or attempt >= self._policy.retries:
                    raise
                delay = full_jitter(attempt, self._policy.backoff_base, self._policy.backoff_max)
                log.info("TensorDock create %s: %s; look up again in %.2fs", spec.name, exc, delay)
                await asyncio.sleep(max(delay, exc.retry_after or 0.0))
                attempt += 1

    async def _post_instance(self, spec: CreateSpec) -> Instance:
        offer = spec.offer
        resources: dict[str, Any] = {
            "vcpu_count": offer.vcpu,
            "ram_gb": offer.ram_gb,
            "storage_gb": self._storage_gb,
            "gpus": {},
        }
        gpu_name = offer.details.get("gpu_v0_name") or offer.gpu_model
        if offer.gpu_tier is not GpuTier.NONE and gpu_name:
            resources["gpus"] = {gpu_name: {"count": 1}}
        attributes = {
            "name": spec.name,
            "type": "virtualmachine",
            "image": self._image,
            "resources": resources,
            "hostnode_id": offer.details.get("hostnode_id", offer.placement_id),
            "useDedicatedIp": True,
            "ssh_key": spec.ssh_public_key,
        }
        if spec.user_data is not None:
            # The documented `cloud_init` object: what makes the plain image a Wolf host.
            attributes["cloud_init"] = dict(spec.user_data)
        body = {"data": {"type": "virtualmachine", "attributes": attributes}}
        response = await self._client.request("POST", "instances", json_body=body, idempotent=False)
        if _status(response) >= 400:
            raise self._fail(response, f"create {spec.name}")
        created = parse_instance(parse_json(response.text, f"create {spec.name}"))
        if not created.name:
            created = replace(created, name=spec.name)
        return created

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        """GET /instances/{id}; None when it is gone (the one call that has the IP)."""
        what = f"get instance {instance_id}"
        response = await self._client.request("GET", f"instances/{instance_id}")
        status = _status(response)
        if status == 404:
            return None
        if status >= 400:
            raise self._fail(response, what)
        instance = parse_instance(parse_json(response.text, what), fallback_id=instance_id)
        if is_gone_status(instance.metadata.get("status", "")):
            return None
        return instance

    async def start(self, instance_id: str) -> None:
        """POST /instances/{id}/start; 'already running' is success.

        A `stoppeddisassociated` instance whose GPU was taken meanwhile answers 400: that
        is PlacementLost (it needs a new placement), not a request to retry.
        """
        try:
            await self._power(instance_id, "start")
        except ProviderError as exc:
            if exc.retryable or exc.reason is ErrorReason.NOT_FOUND:
                raise
            instance = await self.observe(instance_id)
            status = (instance.metadata.get("status", "") if instance else "").lower()
            if "disassociated" not in status:
                raise
            raise ProviderError(
                ErrorReason.PLACEMENT_LOST,
                f"{exc.message} (instance {instance_id} is {status}: its hardware was "
                "released while stopped)",
                retryable=False,
            ) from exc

    async def stop(self, instance_id: str) -> None:
        """POST /instances/{id}/stop; 'already stopped' is success."""
        await self._power(instance_id, "stop")

    async def _power(self, instance_id: str, action: str) -> None:
        what = f"{action} instance {instance_id}"
        response = await self._client.request("POST", f"instances/{instance_id}/{action}")
        status = _status(response)
        if status < 400 or is_already_in_state(status, response.text):
            return
        if status == 404:
            raise ProviderError(
                ErrorReason.NOT_FOUND, f"TensorDock {what}: instance not found", retryable=False
            )
        raise self._fail(response, what)

    async def delete(self, instance_id: str) -> None:
        """DELETE /instances/{id}; 404 or 'already gone' is success."""
        what = f"delete instance {instance_id}"
        response = await self._client.request("DELETE", f"instances/{instance_id}")
        status = _status(response)
        if status < 400 or is_already_gone(status, response.text):
            return
        raise self._fail(response, what)


def _status(response: HttpResponse) -> int:
    """The HTTP status, or the error status a 2xx body carries (errors can come with 200)."""
    if response.ok:
        return embedded_error_status(response.text) or response.status
    return response.status
