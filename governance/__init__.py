"""govern's top floor: the app factory, the CLI, the compliance workbench and audit across chains."""

from core import __version__

__all__ = ["__version__"]
