"""govern's ground floor: settings, database, errors, auth, the chain ledger. Imports no domain package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("govern")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
