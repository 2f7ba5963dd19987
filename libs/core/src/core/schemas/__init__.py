"""Pydantic request/response/message models shared by APIs and workers."""
