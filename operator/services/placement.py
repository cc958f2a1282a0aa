"""Provider selection with I/O: ask the planned providers for offers, then choose purely."""

import asyncio
import time
from collections.abc import Mapping

from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.models.enums import CloudProvider, VMPreset
from gamevm.models.gamevm import GameVMSpec
from gamevm.providers.base import Offer, Provider, ProviderError
from gamevm.services.ports import Selection
from gamevm.services.selection import ProviderQuery, choose, plan_selection

MAX_STATUS_CANDIDATES = 10


def placement_key(offer: Offer) -> str:
    """'provider/placement', the key failed placements are remembered by."""
    return f"{offer.provider}/{offer.placement_id}"


def offer_cache_key(
    provider: str, placement: str, preset: VMPreset | str, gpu_model: str | None
) -> str:
    """Key of a chosen offer: everything that sets its price.

    One placement sells several shapes (a hostnode has retro VMs without a GPU and premium
    ones with a high-end GPU): keyed by placement alone, a retro VM capped at 0.20 USD/h
    was created from a premium VM's 1.50 USD/h offer.
    """
    return f"{provider}/{placement}/{preset}/{gpu_model or '-'}"


class ProviderSelector:
    """services.ports.Selector over the provider adapters."""

    def __init__(
        self, providers: Mapping[CloudProvider, Provider], *, offer_ttl: float = 30.0
    ) -> None:
        self._providers = providers
        self._offer_ttl = offer_ttl
        self._chosen: dict[str, tuple[float, Offer]] = {}
        """Offers just chosen, by `offer_cache_key`: the create right after needs no
        re-query."""

    async def _offers(self, query: ProviderQuery) -> list[Offer] | ProviderError:
        try:
            return await self._providers[query.provider].offers(query.request)
        except ProviderError as exc:
            return exc

    async def select(
        self,
        spec: GameVMSpec,
        config: EmulatorConfigSpec,
        exclude: frozenset[str],
        *,
        tolerate_unavailable: bool = False,
    ) -> Selection:
        """Best eligible offer not excluded; every candidate's verdict for the status."""
        plan = plan_selection(config, spec)
        results = await asyncio.gather(*(self._offers(q) for q in plan.queries))
        offers: dict[CloudProvider, list[Offer]] = {}
        errors: dict[CloudProvider, object] = {}
        for query, result in zip(plan.queries, results, strict=True):
            if isinstance(result, ProviderError):
                errors[query.provider] = result
            else:
                offers[query.provider] = result
        outcome = choose(plan, offers, errors, exclude=exclude)
        chosen = outcome.chosen
        if chosen is not None:
            self._remember(chosen.offer, chosen.preset)
        if not tolerate_unavailable:
            _raise_if_preferred_unavailable(
                plan.queries, errors, chosen.priority if chosen else None
            )
        summary = str(outcome.error) if outcome.error else ""
        return Selection(
            chosen=chosen.offer if chosen else None,
            preset=chosen.preset if chosen else plan.console_preset,
            candidates=outcome.provider_decision(limit=MAX_STATUS_CANDIDATES).candidates,
            summary=summary,
        )

    def _remember(self, offer: Offer, preset: VMPreset) -> None:
        now = time.monotonic()
        self._chosen = {k: v for k, v in self._chosen.items() if now - v[0] < self._offer_ttl}
        key = offer_cache_key(offer.provider.value, offer.placement_id, preset, offer.gpu_model)
        self._chosen[key] = (now, offer)

    async def offer_for(
        self,
        spec: GameVMSpec,
        config: EmulatorConfigSpec,
        provider: str,
        placement: str,
        gpu_model: str | None = None,
    ) -> Offer | None:
        """The current offer for a placement chosen before (e.g. before a restart)."""
        plan = plan_selection(config, spec)
        query = next((q for q in plan.queries if q.provider.value == provider), None)
        if query is None:
            return None
        # Many VMs pick the same placement at once: the entry serves all of them until it
        # expires (the create itself reports a placement that has filled up).
        key = offer_cache_key(provider, placement, query.preset, gpu_model)
        cached = self._chosen.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._offer_ttl:
            return cached[1]
        offers = await self._providers[query.provider].offers(query.request)
        matching = [o for o in offers if o.placement_id == placement]
        same_gpu = [o for o in matching if o.gpu_model == gpu_model]
        return next(iter(same_gpu or matching), None)


def _raise_if_preferred_unavailable(
    queries: tuple[ProviderQuery, ...],
    errors: Mapping[CloudProvider, object],
    chosen_priority: int | None,
) -> None:
    """A transient failure of a provider preferred over the choice is retried, not skipped."""
    for query in queries:
        if chosen_priority is not None and query.priority >= chosen_priority:
            return
        error = errors.get(query.provider)
        if isinstance(error, ProviderError) and error.retryable:
            raise error
