"""The online server: OIP v2, TF-Serving REST and simple JSON over the one runtime."""

from .app import create_app

__all__ = ["create_app"]
