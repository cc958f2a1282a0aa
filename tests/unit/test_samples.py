"""manifests/samples/: every sample parses into the models and is consistent with the seed."""

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from gamevm.models import (
    CONSOLE_DEFAULT_PRESET,
    PRESET_RESOURCES,
    CloudProvider,
    ConsoleType,
    DeletionPolicy,
    EmulatorConfigSpec,
    GameVMSpec,
    GpuTier,
    RunStrategy,
    VMPreset,
)
from gamevm.models.names import API_VERSION, EMULATORCONFIG_KIND, GAMEVM_KIND
from gamevm.models.presets import larger_preset
from gamevm.providers.locations import load_package_json

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"
EXAMPLES = SAMPLES.parent / "examples"
"""GameVMs that can outlive their manifest (runStrategy Always, deletionPolicy Orphan)."""
KUSTOMIZATION = SAMPLES / "kustomization.yaml"
DNS_1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

# providers.md section 5, "suggested cost-limit defaults", USD per hour.
SUGGESTED_CAP = {VMPreset.RETRO: 0.05, VMPreset.ADVANCED: 0.60, VMPreset.PREMIUM: 1.30}


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("*.yaml") if p != KUSTOMIZATION)


def load(path: Path) -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(documents) == 1, f"{path.name}: expected one document, found {len(documents)}"
    document = documents[0]
    assert isinstance(document, dict)
    return document


def of_kind(kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sample_files():
        document = load(path)
        if document["kind"] == kind:
            yield path, document


@cache
def emulator_configs() -> dict[ConsoleType, EmulatorConfigSpec]:
    return {
        spec.console_type: spec
        for spec in (
            EmulatorConfigSpec.model_validate(d["spec"]) for _, d in of_kind("EmulatorConfig")
        )
    }


def gamevms() -> dict[str, GameVMSpec]:
    return {
        d["metadata"]["name"]: GameVMSpec.model_validate(d["spec"]) for _, d in of_kind(GAMEVM_KIND)
    }


def reachable_presets(spec: EmulatorConfigSpec) -> set[VMPreset]:
    """Every preset a VM of this console can be asked for: default, game overrides, provider
    overrides (an override never lowers the console's preset)."""
    presets = {spec.default_preset}
    presets |= {larger_preset(spec.default_preset, g.preset) for g in spec.game_overrides}
    presets |= {p.preset_override for p in spec.preferred_providers if p.preset_override}
    return presets


EMULATOR_CONFIG_FILES = [p for p, _ in of_kind(EMULATORCONFIG_KIND)]
GAMEVM_FILES = [p for p, _ in of_kind(GAMEVM_KIND)]


def test_samples_exist() -> None:
    assert len(EMULATOR_CONFIG_FILES) == 10
    assert len(GAMEVM_FILES) >= 3


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_sample_is_one_known_object_of_our_api(path: Path) -> None:
    document = load(path)
    assert document["apiVersion"] == API_VERSION
    assert document["kind"] in {EMULATORCONFIG_KIND, GAMEVM_KIND}
    assert set(document) == {"apiVersion", "kind", "metadata", "spec"}
    assert DNS_1123_SUBDOMAIN.match(document["metadata"]["name"])
    assert "status" not in document


@pytest.mark.parametrize("path", EMULATOR_CONFIG_FILES, ids=lambda p: p.name)
def test_emulator_config_sample(path: Path) -> None:
    document = load(path)
    spec = EmulatorConfigSpec.model_validate(document["spec"])
    console = spec.console_type
    # Cluster-scoped, one per console, named after it (the CRD's CEL rule).
    assert "namespace" not in document["metadata"]
    assert document["metadata"]["name"] == console.value
    assert path.name == f"emulatorconfig-{console.value}.yaml"
    # Written in camelCase, as the API server stores it.
    assert spec.model_dump(mode="json", exclude_unset=True) == document["spec"]
    # The seed's console -> preset mapping and preset resource table.
    assert spec.default_preset is CONSOLE_DEFAULT_PRESET[console]
    resources = PRESET_RESOURCES[spec.default_preset]
    assert (spec.min_cpu, spec.min_ram_gb) == (resources.vcpu, resources.ram_gb)
    assert spec.requires_gpu is (resources.gpu is not GpuTier.NONE)


def test_emulator_configs_cover_every_console_exactly_once() -> None:
    consoles = [d["spec"]["consoleType"] for _, d in of_kind(EMULATORCONFIG_KIND)]
    assert sorted(consoles) == sorted(c.value for c in ConsoleType)


@pytest.mark.parametrize("console", list(ConsoleType), ids=lambda c: c.value)
def test_cost_caps_follow_the_suggested_defaults(console: ConsoleType) -> None:
    spec = emulator_configs()[console]
    largest = max(reachable_presets(spec), key=list(VMPreset).index)
    # The console cap is the suggested cap of the largest preset it can be asked for, so a
    # gameOverrides entry can always be placed; provider caps only ever tighten it.
    assert spec.cost_per_hour_limit == SUGGESTED_CAP[largest]
    for entry in spec.preferred_providers:
        assert entry.cost_per_hour_limit is not None, entry.provider
        assert 0 < entry.cost_per_hour_limit <= spec.cost_per_hour_limit, entry.provider


@pytest.mark.parametrize("console", list(ConsoleType), ids=lambda c: c.value)
def test_provider_preferences(console: ConsoleType) -> None:
    spec = emulator_configs()[console]
    ordered = [p.provider for p in spec.providers_by_priority()]
    # Listed in priority order in the file too, so the YAML reads top-down.
    assert [p.provider for p in spec.preferred_providers] == ordered
    if not spec.requires_gpu and reachable_presets(spec) == {VMPreset.RETRO}:
        # CloudyPad's Wolf setup needs an NVIDIA GPU: no-GPU consoles go to TensorDock only.
        assert ordered == [CloudProvider.TENSORDOCK]
    else:
        assert ordered[0] is CloudProvider.TENSORDOCK
        assert all(p.value.startswith("cloudypad_") for p in ordered[1:])
        enabled_cloudypad = [
            p for p in spec.preferred_providers if p.enabled and p.provider.startswith("cloudypad_")
        ]
        assert enabled_cloudypad, "GPU consoles need a CloudyPad fallback"


def cloudypad_catalog() -> dict[str, Any]:
    """The bundled CloudyPad placements: {cloud: {"presets": {...}, "regions": [...]}}."""
    clouds = load_package_json("cloudypad.json")["clouds"]
    assert isinstance(clouds, dict)
    return clouds


@pytest.mark.parametrize("console", list(ConsoleType), ids=lambda c: c.value)
def test_cloudypad_regions_are_known_placements(console: ConsoleType) -> None:
    catalog = cloudypad_catalog()
    for entry in emulator_configs()[console].preferred_providers:
        if entry.regions and entry.provider.startswith("cloudypad_"):
            cloud = entry.provider.removeprefix("cloudypad_")
            known = {r["region"] for r in catalog[cloud]["regions"]}
            assert set(entry.regions) <= known, f"{entry.provider}: {set(entry.regions) - known}"


@pytest.mark.parametrize(
    "console",
    [c for c in ConsoleType if CONSOLE_DEFAULT_PRESET[c] is not VMPreset.RETRO],
    ids=lambda c: c.value,
)
def test_every_gpu_preset_has_a_cloudypad_fallback_under_the_caps(console: ConsoleType) -> None:
    # If TensorDock has no capacity, some enabled CloudyPad cloud must fit the caps at its
    # bundled on-demand price, for every preset the console can be asked for.
    spec = emulator_configs()[console]
    catalog = cloudypad_catalog()
    assert spec.cost_per_hour_limit is not None
    for preset in reachable_presets(spec):
        fitting = [
            entry.provider
            for entry in spec.preferred_providers
            if entry.enabled
            and entry.provider.startswith("cloudypad_")
            and catalog[entry.provider.removeprefix("cloudypad_")]["presets"][preset.value][
                "price_per_hour"
            ]
            <= min(spec.cost_per_hour_limit, entry.cost_per_hour_limit or float("inf"))
        ]
        assert fitting, f"{console.value}: no CloudyPad cloud fits the caps for {preset.value}"


@pytest.mark.parametrize("console", list(ConsoleType), ids=lambda c: c.value)
def test_game_overrides_only_raise_the_preset(console: ConsoleType) -> None:
    spec = emulator_configs()[console]
    for override in spec.game_overrides:
        assert list(VMPreset).index(override.preset) >= list(VMPreset).index(spec.default_preset)


def test_some_game_overrides_exist() -> None:
    configs = emulator_configs()
    assert {g.game_id for g in configs[ConsoleType.SWITCH].game_overrides} == {"zelda-totk"}
    assert any(g.preset is VMPreset.PREMIUM for g in configs[ConsoleType.N3DS].game_overrides)
    assert configs[ConsoleType.GBA].game_overrides == []


@pytest.mark.parametrize("path", GAMEVM_FILES, ids=lambda p: p.name)
def test_gamevm_sample(path: Path) -> None:
    document = load(path)
    spec = GameVMSpec.model_validate(document["spec"])
    assert document["metadata"].get("namespace", "default") == "default"
    assert path.name.startswith("gamevm-")
    assert spec.model_dump(mode="json", exclude_unset=True) == document["spec"]
    # Placeable: its console has a config, and an explicit provider is enabled there.
    config = emulator_configs()[spec.console_type]
    if spec.provider is not None:
        enabled = {p.provider for p in config.preferred_providers if p.enabled}
        assert spec.provider in enabled


def test_seed_switch_example_is_a_sample() -> None:
    spec = gamevms()["switch-mario-odyssey"]
    assert spec.console_type is ConsoleType.SWITCH
    assert spec.game_id == "mario-odyssey"
    assert spec.user_id == "user123"
    assert spec.user_location is not None
    assert spec.user_location.as_tuple() == (32.7767, -96.7970)
    assert spec.auto_stop_timeout == 1800


def test_gamevm_samples_show_each_policy() -> None:
    specs = list(gamevms().values())
    assert any(s.console_type is ConsoleType.NES for s in specs)
    assert any(s.provider is not None for s in specs)
    assert any(s.auto_stop_timeout == 900 for s in specs), "one sample keeps the default"


@pytest.mark.parametrize("path", GAMEVM_FILES, ids=lambda p: p.name)
def test_no_sample_outlives_the_samples(path: Path) -> None:
    """`kubectl delete -k manifests/samples` terminates every VM the samples made, and an
    idle one is auto-stopped: no Always (never auto-stopped), no Orphan (survives delete)."""
    spec = GameVMSpec.model_validate(load(path)["spec"])
    assert spec.run_strategy is RunStrategy.MANUAL
    assert spec.deletion_policy is DeletionPolicy.DELETE


def test_kustomization_warns_that_samples_provision_paid_vms() -> None:
    header = KUSTOMIZATION.read_text()
    assert "PAID" in header
    assert "manifests/examples/" in header


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def test_examples_show_the_policies_that_outlive_a_manifest() -> None:
    specs = [GameVMSpec.model_validate(load(p)["spec"]) for p in example_files()]
    assert any(s.run_strategy is RunStrategy.ALWAYS for s in specs)
    assert any(s.deletion_policy is DeletionPolicy.ORPHAN for s in specs)
    # Not a kustomization: nobody applies them all by accident.
    assert not (EXAMPLES / "kustomization.yaml").exists()


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_is_valid_and_warns(path: Path) -> None:
    document = load(path)
    assert document["kind"] == GAMEVM_KIND
    spec = GameVMSpec.model_validate(document["spec"])
    assert spec.model_dump(mode="json", exclude_unset=True) == document["spec"]
    assert path.read_text().startswith("# WARNING: this GameVM provisions a paid cloud VM")
    assert document["metadata"]["name"] not in gamevms(), "examples and samples share no name"


def test_gamevm_names_are_unique() -> None:
    names = [d["metadata"]["name"] for _, d in of_kind(GAMEVM_KIND)]
    assert len(names) == len(set(names))


def test_kustomization_lists_every_sample_once() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert sorted(resources) == sorted(p.name for p in sample_files())
    # No namespace transformer: it would also stamp the cluster-scoped EmulatorConfigs.
    assert "namespace" not in kustomization
