"""Maps the `operator/` folder to the import package `gamevm`.

`operator` is a standard-library module, so the folder can never be imported
under its own name; all other metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    package_dir={"gamevm": "operator"},
    packages=[
        "gamevm",
        *(f"gamevm.{p}" for p in find_packages(where="operator")),
        "gamevm.providers.data",
    ],
    package_data={
        "gamevm": ["py.typed"],
        "gamevm.providers.data": ["*.json"],
        "gamevm.services": ["templates/wolfhost/*"],
    },
)
