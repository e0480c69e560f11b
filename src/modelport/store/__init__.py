"""The model store: versions, aliases, blobs and the metadata database."""

from ..refs import DEFAULT_ALIAS, LATEST, ModelRef
from .store import ModelSummary, Store

__all__ = ["DEFAULT_ALIAS", "LATEST", "ModelRef", "ModelSummary", "Store"]
