"""Where the service is and who we are: the WebSocket URL and the API key.

The key comes from an argument or ``DASHSCOPE_API_KEY`` and is held in :class:`ApiKey`, whose
``str``/``repr`` never show it; only :meth:`ApiKey.authorization` reveals it, to build the header.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["DEFAULT_URL", "INTL_URL", "ApiKey", "resolve_api_key", "resolve_url"]

DEFAULT_URL = "wss://dashscope.aliyuncs.com/api-ws/v1/inference"
INTL_URL = "wss://dashscope-intl.aliyuncs.com/api-ws/v1/inference"


class ApiKey:
    """An API key (or 60-second temporary token) that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.strip()

    def authorization(self) -> str:
        """The value of the ``Authorization`` header."""
        return f"Bearer {self._value}"

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***`` (server-provided text
        may echo the request)."""
        return text.replace(self._value, "***") if self._value and self._value in text else text

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__

    def __reduce__(self) -> str:  # refuse to pickle the secret along with an object graph
        raise TypeError("ApiKey cannot be pickled")


def resolve_api_key(api_key: str | ApiKey | None = None) -> ApiKey | None:
    """The key from the argument, else from ``DASHSCOPE_API_KEY``, else None."""
    if isinstance(api_key, ApiKey):
        return api_key or None
    value = api_key if api_key is not None else os.environ.get("DASHSCOPE_API_KEY", "")
    key = ApiKey(value)
    return key or None


def resolve_url(url: str | None = None) -> str:
    """The URL argument, else ``DASHSCOPE_WEBSOCKET_BASE_URL``, else the mainland service.

    ConfigurationError unless it is a ``ws://`` or ``wss://`` URL with a host."""
    value = url or os.environ.get("DASHSCOPE_WEBSOCKET_BASE_URL") or DEFAULT_URL
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("ws", "wss") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port number
        valid = False
    if not valid:
        raise ConfigurationError(
            f"invalid speech service URL {value!r}: expected ws://HOST[:PORT]/PATH or wss://…, "
            f"e.g. {DEFAULT_URL}"
        )
    return value
