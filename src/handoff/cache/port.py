"""The cache port lives with the other ports (services depend on it); adapters import it from here."""

from handoff.services.ports import Cache, CacheStats

__all__ = ["Cache", "CacheStats"]
