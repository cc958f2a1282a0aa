"""Generates the CRD YAML from the pydantic models, so the schema has one source of truth.

pydantic emits JSON Schema 2020-12; Kubernetes wants a structural OpenAPI v3.0 subset. The
conversion inlines `$ref`s, turns `X | None` into an optional X, maps numeric exclusive
bounds to the v3.0 boolean form, maps free-form dicts to x-kubernetes-preserve-unknown-fields
and drops keywords structural schemas refuse (title, additionalProperties: false).
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from gamevm.models.emulator_config import EmulatorConfigSpec, EmulatorConfigStatus
from gamevm.models.gamevm import GameVMSpec, GameVMStatus
from gamevm.models.names import (
    EMULATORCONFIG_KIND,
    EMULATORCONFIG_PLURAL,
    GAMEVM_KIND,
    GAMEVM_PLURAL,
    GROUP,
    VERSION,
)

CRD_FILES = {"gamevm.yaml": GAMEVM_KIND, "emulatorconfig.yaml": EMULATORCONFIG_KIND}
"""File name -> kind. Written to crds/ and, for kustomize, to manifests/crds/."""
KUSTOMIZE_COPY = Path("manifests") / "crds"

_DROP = {"title", "additionalProperties"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:  # noqa: PLR0912  # one pass per keyword
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            merged = {**_inline(options[0], defs), **rest}
            merged.pop("default", None) if rest.get("default") is None else None
            return _inline(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP and not (key == "additionalProperties" and value not in (False,)):
            continue
        if key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _inline(prop, defs) for name, prop in value.items()}
            continue
        out[key] = _inline(value, defs)
    if out.get("type") == "object" and "properties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "default" in out and out["default"] is None:
        del out["default"]
    return out


def openapi_schema(model: type[BaseModel], *, keep_defaults: bool = True) -> dict[str, Any]:
    """Structural OpenAPI v3.0 schema of a model, as a CRD wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _inline(raw, defs)
    if not keep_defaults:
        _strip_defaults(schema)
    return schema


def _strip_defaults(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("default", None)
        for value in node.values():
            _strip_defaults(value)
    elif isinstance(node, list):
        for item in node:
            _strip_defaults(item)


def _status_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Status defaults would be injected into every status write; the operator sets values.
    # No preserve-unknown-fields: the operator writes only modelled fields (kopf keeps its
    # progress in annotations), so a typo'd field is pruned instead of stored.
    schema = openapi_schema(model, keep_defaults=False)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    schema.pop("required", None)
    return schema


def _column(name: str, type_: str, path: str, priority: int = 0, **extra: str) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    column.update(extra)
    return column


def _crd(
    *,
    kind: str,
    plural: str,
    short_name: str,
    scope: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    root_rules: list[dict[str, str]],
    description: str,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": metadata or {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "gamevm-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["gaming"],
            },
            "scope": scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def gamevm_crd() -> dict[str, Any]:
    """The GameVM CRD."""
    return _crd(
        kind=GAMEVM_KIND,
        plural=GAMEVM_PLURAL,
        short_name="gvm",
        scope="Namespaced",
        spec=openapi_schema(GameVMSpec),
        status=_status_schema(GameVMStatus),
        description="A cloud gaming VM for one console, provisioned on the best provider.",
        root_rules=[],
        metadata={
            "type": "object",
            "properties": {
                # The name becomes a label value on the access Secret: 63 characters at most.
                "name": {"type": "string", "maxLength": 63},
            },
        },
        columns=[
            _column("Console", "string", ".spec.consoleType"),
            _column("Preset", "string", ".status.preset"),
            _column("Provider", "string", ".status.provider"),
            _column("Phase", "string", ".status.phase"),
            _column("IP", "string", ".status.ipAddress"),
            _column("Age", "date", ".metadata.creationTimestamp"),
            _column("Region", "string", ".status.region", priority=1),
            _column("Cost/h", "number", ".status.costPerHour", priority=1),
            _column("Last Activity", "date", ".status.lastActivity", priority=1),
        ],
    )


def emulatorconfig_crd() -> dict[str, Any]:
    """The EmulatorConfig CRD (cluster-scoped, one per console)."""
    return _crd(
        kind=EMULATORCONFIG_KIND,
        plural=EMULATORCONFIG_PLURAL,
        short_name="emucfg",
        scope="Cluster",
        spec=openapi_schema(EmulatorConfigSpec),
        status=_status_schema(EmulatorConfigStatus),
        description="Console requirements and provider preferences; the name is the console.",
        root_rules=[
            {
                "rule": "self.metadata.name == self.spec.consoleType",
                "message": "metadata.name must equal spec.consoleType (one config per console)",
                "fieldPath": ".spec.consoleType",
            }
        ],
        columns=[
            _column("Console", "string", ".spec.consoleType"),
            _column("Default Preset", "string", ".spec.defaultPreset"),
            _column("GPU", "boolean", ".spec.requiresGpu"),
            _column("Max Hours", "integer", ".spec.maxSessionHours"),
            _column("Age", "date", ".metadata.creationTimestamp"),
        ],
    )


_BUILDERS = {GAMEVM_KIND: gamevm_crd, EMULATORCONFIG_KIND: emulatorconfig_crd}


def render_crds() -> dict[str, str]:
    """File name -> YAML text."""
    header = "# Generated by `gamevm-operator crds` from operator/models. Do not edit.\n"
    return {
        name: header + yaml.safe_dump(_BUILDERS[kind](), sort_keys=False, width=100)
        for name, kind in CRD_FILES.items()
    }


def _targets(out: str | Path) -> list[Path]:
    folder = Path(out)
    targets = [folder]
    if folder == Path("crds"):
        targets.append(KUSTOMIZE_COPY)
    return targets


README = Path("README.md")


def write_crds(out: str | Path = "crds") -> list[Path]:
    """Write the CRDs (and the kustomize copy and README table for the default folder)."""
    written = []
    if Path(out) == Path("crds") and README.exists():
        README.write_text(render_readme(README.read_text()))
        written.append(README)
    for folder in _targets(out):
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in render_crds().items():
            path = folder / name
            path.write_text(text)
            written.append(path)
    return written


def check_crds(out: str | Path = "crds") -> list[Path]:
    """Paths whose content differs from what the models generate."""
    stale = []
    if Path(out) == Path("crds") and README.exists():
        text = README.read_text()
        if render_readme(text) != text:
            stale.append(README)
    for folder in _targets(out):
        for name, text in render_crds().items():
            path = folder / name
            if not path.exists() or path.read_text() != text:
                stale.append(path)
    return stale


README_START = "<!-- crd-fields:start (generated by `gamevm-operator crds`) -->"
README_END = "<!-- crd-fields:end -->"


def _type_of(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = str(prop.get("type", "object"))
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    return kind


def _rules(prop: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("minLength", "len >="),
        ("maxLength", "len <="),
        ("maxItems", "items <="),
    ):
        if key in prop:
            op = label
            if key == "minimum" and prop.get("exclusiveMinimum"):
                op = ">"
            parts.append(f"{op} {prop[key]}")
    if "pattern" in prop:
        parts.append(f"pattern `{prop['pattern']}`")
    return ", ".join(parts)


def _rows(schema: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        default = prop.get("default")
        rows.append(
            f"| `{path}` | {_type_of(prop)} | {'yes' if name in required else ''} | "
            f"{'' if default is None else f'`{default}`'} | {_rules(prop)} | "
            f"{str(prop.get('description', '')).replace('|', '/')} |"
        )
        if prop.get("type") == "object" and "properties" in prop:
            rows.extend(_rows(prop, path))
        items = prop.get("items", {})
        if prop.get("type") == "array" and "properties" in items:
            rows.extend(_rows(items, f"{path}[]"))
    return rows


def field_table() -> str:
    """The README's CRD field reference, generated from the same schemas as the CRDs."""
    header = (
        "| field | type | required | default | rules | description |\n|---|---|---|---|---|---|"
    )
    sections = []
    for title, schema in (
        ("GameVM `spec`", openapi_schema(GameVMSpec)),
        ("EmulatorConfig `spec`", openapi_schema(EmulatorConfigSpec)),
    ):
        sections.append(f"**{title}**\n\n{header}\n" + "\n".join(_rows(schema, "spec")))
    return "\n\n".join(sections)


def render_readme(text: str) -> str:
    """README text with the generated field table between the markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0:
        return text
    return f"{text[: start + len(README_START)]}\n{field_table()}\n{text[end:]}"
