"""Base classes: camelCase on the Kubernetes wire, snake_case in Python."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A Kubernetes API model: camelCase aliases, snake_case accepted too."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_enum_values=False,
    )


class SpecModel(CamelModel):
    """User input: unknown fields are an error, as in the CRD schema."""

    model_config = ConfigDict(extra="forbid")


class StatusModel(CamelModel):
    """Operator output: unknown keys (kopf's own) are ignored."""

    model_config = ConfigDict(extra="ignore")
