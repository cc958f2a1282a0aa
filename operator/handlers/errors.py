"""Turns validation errors into field-specific, human-readable messages."""

from pydantic import ValidationError
from pydantic.alias_generators import to_camel


def describe_validation_error(exc: ValidationError, root: str = "spec") -> str:
    """'spec.userLocation.latitude: Input should be less than or equal to 90; ...'."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(
            to_camel(part) if isinstance(part, str) else f"[{part}]" for part in error["loc"]
        ).replace(".[", "[")
        parts.append(f"{root}.{path}: {error['msg']}" if path else f"{root}: {error['msg']}")
    return "; ".join(parts)
