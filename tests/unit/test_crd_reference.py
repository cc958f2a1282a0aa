"""docs/crd-reference.md is generated from the CRDs in crds/ and must stay current.

Regenerate with:
    .venv/bin/python tests/unit/test_crd_reference.py --write
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "crd-reference.md"
CRDS = ("gamevm.yaml", "emulatorconfig.yaml")

Schema = dict[str, Any]


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def type_of(schema: Schema) -> str:
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"[]{type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        value = schema["additionalProperties"]
        return f"map[string]{type_of(value) if isinstance(value, dict) else 'any'}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return kind


def constraints(schema: Schema) -> str:
    parts: list[str] = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        parts.append(f"{'>' if schema.get('exclusiveMinimum') else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if schema.get('exclusiveMaximum') else '<='} {high}")
    for key, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    if schema.get("x-kubernetes-list-type") in {"set", "map"}:
        keys = schema.get("x-kubernetes-list-map-keys")
        parts.append(f"unique by {', '.join(keys)}" if keys else "unique items")
    for rule in schema.get("x-kubernetes-validations", []):
        parts.append(rule.get("message") or f"`{rule['rule']}`")
    return "; ".join(parts)


def rows(schema: Schema, path: str, required: bool) -> Iterator[str]:
    default = f"`{json.dumps(schema['default'])}`" if "default" in schema else ""
    yield (
        f"| `{path}` | {type_of(schema)} | {'yes' if required else ''} | {default} | "
        f"{cell(constraints(schema))} | {cell(schema.get('description', ''))} |"
    )
    yield from children(schema, path)


def children(schema: Schema, path: str) -> Iterator[str]:
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        yield from children(schema["items"], f"{path}[]")
        return
    needed = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        yield from rows(child, f"{path}.{name}" if path else name, name in needed)


def crd_section(crd: Schema) -> str:
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    lines = [
        f"## {names['kind']}",
        "",
        f"`{crd['spec']['group']}/{version['name']}`, {crd['spec']['scope'].lower()}; "
        f"plural `{names['plural']}`, short names "
        f"{', '.join(f'`{s}`' for s in names.get('shortNames', []))}, categories "
        f"{', '.join(f'`{c}`' for c in names.get('categories', []))}.",
        "",
    ]
    if schema.get("description"):
        lines += [cell(schema["description"]), ""]
    for rule in schema.get("x-kubernetes-validations", []):
        lines += [f"Rule on the whole object: {rule.get('message') or rule['rule']}.", ""]
    columns = version.get("additionalPrinterColumns", [])
    if columns:
        lines += ["`kubectl get` columns (`-o wide` adds those with priority 1):", ""]
        lines += ["| Column | Path | Wide only |", "|---|---|---|"]
        lines += [
            f"| {c['name']} | `{c['jsonPath']}` | {'yes' if c.get('priority') else 'no'} |"
            for c in columns
        ]
        lines.append("")
    for part in ("spec", "status"):
        if part not in schema.get("properties", {}):
            continue
        sub = schema["properties"][part]
        lines += [f"### {names['kind']} {part}", ""]
        rules = sub.get("x-kubernetes-validations", [])
        if rules:
            lines += ["Rules checked by the API server on the whole object:", ""]
            lines += [f"- {r.get('message') or r['rule']}" for r in rules]
            lines.append("")
        lines += [
            "| Field | Type | Required | Default | Validation | Description |",
            "|---|---|---|---|---|---|",
        ]
        lines += list(children(sub, part))
        lines.append("")
    return "\n".join(lines)


def reference() -> str:
    header = [
        "# CRD field reference",
        "",
        "<!-- Generated from crds/ by tests/unit/test_crd_reference.py --write. Do not edit. -->",
        "",
        "Every field of the two custom resources, with the validation the API server",
        "applies (`kubectl apply` rejects invalid objects with the field's name).",
        "`kubectl explain gamevm.spec` shows the same descriptions in a cluster.",
        "",
    ]
    sections = [crd_section(yaml.safe_load((ROOT / "crds" / name).read_text())) for name in CRDS]
    return "\n".join(header) + "\n" + "\n".join(sections)


def test_crd_reference_is_current() -> None:
    assert REFERENCE.read_text() == reference(), (
        "docs/crd-reference.md is stale: run `.venv/bin/python tests/unit/test_crd_reference.py "
        "--write`"
    )


def test_every_spec_field_is_described() -> None:
    fields = [line for line in reference().splitlines() if line.startswith("| `spec.")]
    undocumented = [line for line in fields if line.endswith("|  |")]
    assert not undocumented, undocumented


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        REFERENCE.write_text(reference())
        print(f"wrote {REFERENCE.relative_to(ROOT)}")
    else:
        print(reference())
