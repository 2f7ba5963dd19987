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
from core.storage.factory import create_storage
from core.storage.settings import StorageSettings

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
