"""Invalid manifests kept as data; see catalog.py."""
