from tests.console.browser import browser, chromium_paths, live

__all__ = ["browser", "chromium_paths", "live"]
