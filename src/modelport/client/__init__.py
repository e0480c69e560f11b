"""The device SDK: predict offline, online or both, with verified, reversible model updates.

Light on purpose: it needs numpy, onnxruntime and httpx, never the training or serving stack.
"""

from .cache import CacheNotWritable
from .client import Client
from .keys import FileKeyStore, KeyStore
from .model import Model, Result, SyncEvent
from .remote import ServerUnavailable
from .training import TrainingClient

__all__ = [
    "CacheNotWritable",
    "Client",
    "FileKeyStore",
    "KeyStore",
    "Model",
    "Result",
    "ServerUnavailable",
    "SyncEvent",
    "TrainingClient",
]
