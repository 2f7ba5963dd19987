"""The backend factory: `StorageSettings` in, the configured `MediaStorage` out.

The backends are imported inside `create_storage`, so importing `core.storage` loads neither
of them (nor miniopy-async) and no backend module is ever imported by a module it imports.
"""

from __future__ import annotations

from core.storage.base import MediaStorage
from core.storage.settings import StorageSettings


def create_storage(settings: StorageSettings) -> MediaStorage:
    """The configured backend. Nothing connects until the first call on the running loop."""
    if settings.storage_backend == "s3":
        from core.storage.s3 import S3MediaStorage

        return S3MediaStorage.from_settings(settings)
    from core.storage.local import LocalMediaStorage

    return LocalMediaStorage(settings.storage_local_root)
