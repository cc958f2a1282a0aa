"""Counts every provider call and error (Prometheus) without touching the adapters."""

from gamevm import metrics
from gamevm.models.enums import CloudProvider
from gamevm.providers.base import CreateSpec, Instance, Offer, OfferRequest, Provider


class MeteredProvider:
    """A Provider that forwards to another and counts calls and errors by operation."""

    def __init__(self, inner: Provider) -> None:
        self._inner = inner

    @property
    def name(self) -> CloudProvider:
        """The wrapped provider's name."""
        return self._inner.name

    async def offers(self, request: OfferRequest) -> list[Offer]:
        """Counted `offers`."""
        with metrics.provider_call(self.name, "offers"):
            return await self._inner.offers(request)

    async def find(self, name: str) -> Instance | None:
        """Counted `find`."""
        with metrics.provider_call(self.name, "find"):
            return await self._inner.find(name)

    async def create(self, spec: CreateSpec) -> Instance:
        """Counted `create`."""
        with metrics.provider_call(self.name, "create"):
            return await self._inner.create(spec)

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        """Counted `observe`."""
        with metrics.provider_call(self.name, "observe"):
            return await self._inner.observe(instance_id, address=address)

    async def list_instances(self) -> list[Instance] | None:
        """Counted `list_instances`."""
        with metrics.provider_call(self.name, "list"):
            return await self._inner.list_instances()

    async def start(self, instance_id: str) -> None:
        """Counted `start`."""
        with metrics.provider_call(self.name, "start"):
            await self._inner.start(instance_id)

    async def stop(self, instance_id: str) -> None:
        """Counted `stop`."""
        with metrics.provider_call(self.name, "stop"):
            await self._inner.stop(instance_id)

    async def delete(self, instance_id: str) -> None:
        """Counted `delete`."""
        with metrics.provider_call(self.name, "delete"):
            await self._inner.delete(instance_id)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._inner.aclose()
