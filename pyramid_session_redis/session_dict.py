"""The dict side of a session: ``ISession``'s mapping methods, flash messages, CSRF.

``SessionDict`` implements them once over a :class:`~.state.SessionState`, which records
what each call changed (for change detection and the merge); a subclass supplies the
state by the ``_st`` property (``RedisSession`` loads it there).
"""

from __future__ import annotations

import secrets
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from .state import SessionState

_MISSING: Any = object()
CSRF_KEY = "_csrft_"  # the keys of Pyramid's own sessions
FLASH_PREFIX = "_f_"


class SessionDict:
    """Mapping, flash and CSRF methods over ``self._st``."""

    @property
    def _st(self) -> SessionState:
        raise NotImplementedError

    # dict API: reads
    def __getitem__(self, key: str) -> Any:
        state = self._st
        return state.expose(key, state.data[key])

    def get(self, key: str, default: Any = None) -> Any:
        state = self._st
        value = state.data.get(key, _MISSING)
        return default if value is _MISSING else state.expose(key, value)

    def __contains__(self, key: object) -> bool:
        return key in self._st.data

    def has_key(self, key: str) -> bool:
        return key in self._st.data

    def __len__(self) -> int:
        return len(self._st.data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._st.data)

    def keys(self) -> KeysView[str]:
        return self._st.data.keys()

    def iterkeys(self) -> Iterator[str]:
        return iter(self.keys())

    def itervalues(self) -> Iterator[Any]:
        return iter(self.values())

    def iteritems(self) -> Iterator[tuple[str, Any]]:
        return iter(self.items())

    def values(self) -> ValuesView[Any]:
        state = self._st
        state.expose_all()
        return state.data.values()

    def items(self) -> ItemsView[str, Any]:
        state = self._st
        state.expose_all()
        return state.data.items()

    # dict API: writes
    def __setitem__(self, key: str, value: Any) -> None:
        self._st.assign(key, value)

    def __delitem__(self, key: str) -> None:
        self._st.remove(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        state = self._st
        if key not in state.data:
            state.assign(key, default)
        return state.expose(key, state.data[key])

    def pop(self, key: str, *default: Any) -> Any:
        state = self._st
        if key in state.data:
            value = state.data[key]
            state.remove(key)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, Any]:
        state = self._st
        if not state.data:
            raise KeyError("popitem(): session is empty")
        key = next(reversed(state.data))
        return key, self.pop(key)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        state = self._st
        for key, value in dict(other, **kwargs).items():
            state.assign(key, value)

    def clear(self) -> None:
        state = self._st
        for key in list(state.data):
            state.remove(key)

    def incr(self, key: str, amount: int | float = 1) -> Any:
        """Add ``amount`` to a counter; concurrent increments are never lost."""
        return self._st.incr(key, amount)

    # flash messages and CSRF (same keys as Pyramid's own sessions)
    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        state, key = self._st, FLASH_PREFIX + queue
        messages = list(state.data.get(key, ()))
        if allow_duplicate or msg not in messages:
            state.assign(key, [*messages, msg])

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self._st.data.get(FLASH_PREFIX + queue, ()))

    def pop_flash(self, queue: str = "") -> list[Any]:
        return list(self.pop(FLASH_PREFIX + queue, ()))

    def new_csrf_token(self) -> str:
        token = secrets.token_hex(32)
        self[CSRF_KEY] = token
        return token

    def get_csrf_token(self) -> str:
        token = self.get(CSRF_KEY)
        return token if isinstance(token, str) else self.new_csrf_token()

    @property
    def managed_dict(self) -> dict[str, Any]:
        """The raw data dict; any change to it is detected at the end of the request."""
        state = self._st
        state.expose_all()
        state.forced = True
        return state.data
