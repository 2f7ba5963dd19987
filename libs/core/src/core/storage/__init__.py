"""Media storage: one protocol, an S3 backend (miniopy-async) and a local file system backend."""

from core.storage.base import (
    ByteStream,
    InvalidMediaKey,
    MediaNotFound,
    MediaStorage,
    MediaStream,
    StorageError,
    StorageUnavailable,
    StoredObject,
    media_key,
    validate_key,
)
from core.storage.settings import StorageSettings, create_storage

__all__ = [
    "ByteStream",
    "InvalidMediaKey",
    "MediaNotFound",
    "MediaStorage",
    "MediaStream",
    "StorageError",
    "StorageSettings",
    "StorageUnavailable",
    "StoredObject",
    "create_storage",
    "media_key",
    "validate_key",
]
