"""Guards the packaging trick: `operator/` must never become a regular package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_operator_folder_has_no_init() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_package_imports_as_gamevm() -> None:
    import operator as stdlib_operator

    import gamevm.models

    assert hasattr(stdlib_operator, "itemgetter")
    assert gamevm.models.__name__ == "gamevm.models"
