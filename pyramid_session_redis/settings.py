"""Options: one immutable, validated settings object built once per factory.

``SessionSettings`` declares every option with its default. ``build_settings``
validates keyword arguments (the 1.8 names) and ``parse_ini_settings`` coerces
``redis.sessions.*`` strings through one name -> converter table. Every error is
a :class:`~pyramid_session_redis.exceptions.ConfigurationError` naming the option.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.path import DottedNameResolver

from .codec import COMPRESSIONS, DEFAULT_MAX_PAYLOAD_BYTES
from .exceptions import ConfigurationError
from .lock import hash_tag
from .sharding import Shard, parse_shards
from .topology import Address, check_topology, parse_cluster_nodes, parse_sentinels, topology_of

log = logging.getLogger("pyramid_session_redis")
INI_PREFIX = "redis.sessions."
PERSISTENCE_MODES = ("cas", "overwrite", "lock")
CONFLICT_POLICIES = ("ours", "strict")
UNSIGNED_PAYLOAD_POLICIES = ("resign", "reject")
SAMESITE_VALUES = ("strict", "lax", "none")
MAX_COOKIE_LENGTH = 4096

# Bounded by default so that a hung Redis cannot hang a worker (seconds).
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
# persistence = lock (seconds): the lease outlives any sane request (a request that
# outlives it has its write refused), yet a crashed worker blocks its user only briefly;
# a waiting request gives up well before common 30-60 s proxy timeouts.
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_LOCK_WAIT = 5.0
LOCK_OPTIONS = ("lock_timeout", "lock_wait")
# How long a session stays bound to its user after bind_user() (seconds): 30 days.
DEFAULT_USER_INDEX_LIFETIME = 30 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """Every option of the session factory, validated and coerced."""

    # One secret, or several (a list in the factory, whitespace-separated in ini files):
    # the first signs cookies, every one verifies them (see ``secrets``).
    secret: str | bytes | tuple[str | bytes, ...] | None = None
    timeout: int | None = 1200
    cookie_name: str = "session"
    cookie_max_age: int | datetime.timedelta | None = None
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_secure: bool = False
    cookie_httponly: bool = True
    cookie_expires: datetime.datetime | datetime.timedelta | int | None = None
    cookie_comment: str | None = None
    cookie_samesite: str | None = None
    cookie_partitioned: bool = False
    cookie_cache_control: bool = True
    cookie_on_exception: bool = True
    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: str | None = None
    redis_username: str | None = None
    redis_client_callable: Callable[..., Any] | None = None
    redis_socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT
    redis_socket_connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    redis_connection_pool: Any = None
    redis_encoding: str = "utf-8"
    redis_encoding_errors: str = "strict"
    redis_unix_socket_path: str | None = None
    # TLS: ``rediss://`` URLs or ``redis_ssl``; passed to redis-py's SSLConnection.
    redis_ssl: bool = False
    redis_ssl_ca_certs: str | None = None
    redis_ssl_certfile: str | None = None
    redis_ssl_keyfile: str | None = None
    redis_ssl_cert_reqs: str | None = None  # "required" (redis-py's default), "optional", "none"
    # Other deployments (topology.py): each excludes the single server's options.
    sentinels: tuple[Address, ...] | None = None
    sentinel_service: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    sentinel_ssl: bool = False
    cluster_nodes: tuple[Address, ...] | str | None = None  # addresses, or one URL
    shards: tuple[Shard, ...] | None = None
    serialize: Callable[[Any], bytes] | None = None
    deserialize: Callable[[bytes], Any] | None = None
    id_generator: Callable[[], str] | None = None
    prefix: str | None = None
    set_redis_ttl: bool = True
    set_redis_ttl_readheavy: bool = False
    detect_changes: bool = True
    deserialized_fails_new: bool = False
    func_check_response_allow_cookies: Callable[[Any], bool] | None = None
    func_invalid_logger: Callable[[Any, Exception], Any] | None = None
    timeout_trigger: int | None = None
    python_expires: bool = True
    cookie_signer: Any = None
    invalidate_empty_session: bool = True
    persistence: str = "cas"
    cas_retries: int = 50
    on_conflict: str = "ours"
    func_conflict_logger: Callable[[Any, Exception], Any] | None = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    lock_wait: float = DEFAULT_LOCK_WAIT
    degraded_mode: bool = False
    compress_threshold: int | None = 1024
    compression: str = "zstd"
    max_lifetime: int | None = None
    hash_keys: bool = False
    sign_payloads: bool = False
    unsigned_payloads: str = "resign"
    user_index_lifetime: int = DEFAULT_USER_INDEX_LIFETIME
    event_listeners: tuple[Callable[[Any], Any], ...] = ()
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES

    # -- derived modes (properties: computed from the fields, never stored) --
    @property
    def secrets(self) -> tuple[str | bytes, ...]:
        """The cookie secrets, current first (empty with a ``cookie_signer``)."""
        if self.secret is None:
            return ()
        return self.secret if isinstance(self.secret, tuple) else (self.secret,)

    @property
    def current_secret(self) -> str | bytes | None:
        """The secret that signs new cookies and keys the log hash (the first)."""
        return self.secrets[0] if self.secrets else None

    @property
    def redis_ttl(self) -> bool:
        """Redis keeps a TTL on the key."""
        return self.timeout is not None and self.set_redis_ttl

    @property
    def expiry_in_payload(self) -> bool:
        """The payload carries its expiry time (LRU mode, or a timeout trigger)."""
        return (
            self.timeout is not None
            and self.python_expires
            and (self.timeout_trigger is not None or not self.set_redis_ttl)
        )

    @property
    def legacy_layout(self) -> bool:
        """Payloads use 1.8's layout (a user serializer): they always carry ``t`` and ``x``."""
        return self.serialize is not None

    @property
    def payload_expiry(self) -> bool:
        """The payload carries an expiry time that is enforced on load."""
        return self.expiry_in_payload or (
            self.legacy_layout and self.python_expires and self.timeout is not None
        )

    @property
    def refresh_on_read(self) -> bool:
        """The sliding TTL is refreshed by the read itself (GETEX)."""
        return self.redis_ttl and self.timeout_trigger is None

    @property
    def topology(self) -> str:
        """The deployment: ``single``, ``sentinel``, ``cluster``, ``shards``, ``pool`` or
        ``callable`` (see :mod:`.topology`)."""
        return topology_of(self)

    @property
    def lock_mode(self) -> bool:
        """``persistence = lock``: one request of a session at a time."""
        return self.persistence == "lock"

    @property
    def lock_lease_ms(self) -> int:
        """``lock_timeout`` in whole milliseconds (rounded up), as ``SET … PX`` takes it."""
        return math.ceil(self.lock_timeout * 1000)


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SessionSettings))
# Names used by the 1.8 documentation that its own factory rejected.
OPTION_ALIASES = {
    "client_callable": "redis_client_callable",
    "redis_errors": "redis_encoding_errors",
}
_ZERO_MEANS_NONE = ("timeout", "timeout_trigger", "max_lifetime")
# Options that need a server secret of ours (not only a ``cookie_signer``).
SECRET_OPTIONS = ("hash_keys", "sign_payloads")

_CALLABLES = (
    "redis_client_callable",
    "serialize",
    "deserialize",
    "id_generator",
    "func_check_response_allow_cookies",
    "func_invalid_logger",
    "func_conflict_logger",
)


def build_settings(secret: Any = None, **options: Any) -> SessionSettings:
    """Validate factory keyword arguments and return the settings object."""
    if isinstance(secret, (list, tuple)):
        secret = _secret_list(secret)
    for alias, name in OPTION_ALIASES.items():
        if alias in options:
            options[name] = options.pop(alias)
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(f"unknown session option(s): {', '.join(unknown)}", *unknown)
    for name in _ZERO_MEANS_NONE:
        if options.get(name) == 0:
            options[name] = None
    listeners = options.get("event_listeners")
    if listeners is not None and not isinstance(listeners, tuple):
        if not callable(listeners) and not isinstance(listeners, (list, set, frozenset)):
            _fail("`event_listeners` must be a sequence of callables", "event_listeners")
        options["event_listeners"] = (listeners,) if callable(listeners) else tuple(listeners)
    for name in ("set_redis_ttl_readheavy", "deserialized_fails_new"):
        if options.get(name) is None and name in options:
            options[name] = False
    lock_options = [name for name in LOCK_OPTIONS if name in options]
    if lock_options and options.get("persistence") != "lock":
        _fail(
            f"`{lock_options[0]}` only applies with `persistence = lock`",
            *lock_options,
            "persistence",
        )
    if "unsigned_payloads" in options and not options.get("sign_payloads"):
        _fail(
            "`unsigned_payloads` only applies with `sign_payloads = true`",
            "unsigned_payloads",
            "sign_payloads",
        )
    for name, parse in _ADDRESS_LISTS.items():
        if options.get(name) is not None:
            options[name] = parse(options[name])
    settings = SessionSettings(secret=secret, **options)
    _validate(settings)
    check_topology(settings, {name for name, value in options.items() if value is not None})
    return _as_1_8_ran(settings)


# Parsed the same way from ini strings and keyword arguments (tuples pass unchanged).
_ADDRESS_LISTS: dict[str, Callable[[Any], Any]] = {
    "sentinels": parse_sentinels,
    "cluster_nodes": parse_cluster_nodes,
    "shards": parse_shards,
}


def _as_1_8_ran(s: SessionSettings) -> SessionSettings:
    """Settings that 1.8 accepted and silently reinterpreted: the same, with a warning."""
    if s.timeout_trigger is not None and s.timeout is None:
        log.warning(
            "timeout_trigger=%s is ignored: without a timeout sessions never expire, so "
            "there is no expiry to refresh (as in 1.8)",
            s.timeout_trigger,
        )
        s = dataclasses.replace(s, timeout_trigger=None)
    if s.timeout_trigger is not None and not s.python_expires:
        log.warning(
            "timeout_trigger keeps the expiry in the payload: python_expires=False is "
            "overridden to True (as in 1.8)"
        )
        s = dataclasses.replace(s, python_expires=True)
    if s.timeout is not None and not s.set_redis_ttl and not s.python_expires:
        log.warning(
            "set_redis_ttl=False with python_expires=False: no expiry is enforced, timeout=%s "
            "is not applied; sessions live until Redis evicts them (1.8's LRU mode: give "
            "Redis a maxmemory and an allkeys-lru policy)",
            s.timeout,
        )
    return s


def _fail(message: str, *options: str) -> None:
    raise ConfigurationError(message, *options)


def _secret_list(secrets: list[Any] | tuple[Any, ...]) -> str | bytes | tuple[str | bytes, ...]:
    """Several secrets as a tuple (one is kept as it is); each a non-empty str or bytes."""
    if not secrets or not all(isinstance(one, (str, bytes)) and one for one in secrets):
        _fail("`secret` must be a string or a non-empty list of non-empty strings", "secret")
    return secrets[0] if len(secrets) == 1 else tuple(secrets)


def _validate(s: SessionSettings) -> None:
    if (s.secret is None) == (s.cookie_signer is None):
        _fail("pass exactly one of `secret` and `cookie_signer`", "secret", "cookie_signer")
    if s.cookie_signer is not None and not (
        callable(getattr(s.cookie_signer, "loads", None))
        and callable(getattr(s.cookie_signer, "dumps", None))
    ):
        _fail("`cookie_signer` needs `loads` and `dumps` methods", "cookie_signer")
    for name in ("timeout", "timeout_trigger"):
        value = getattr(s, name)
        if value is not None and (not isinstance(value, int) or value < 0):
            _fail(f"`{name}` must be a whole number of seconds >= 0, got {value!r}", name)
    _validate_security(s)
    if not isinstance(s.event_listeners, tuple) or not all(map(callable, s.event_listeners)):
        _fail("`event_listeners` must be a sequence of callables", "event_listeners")
    for name in _CALLABLES:
        value = getattr(s, name)
        if value is not None and not callable(value):
            _fail(f"`{name}` must be callable, got {value!r}", name)
    if (s.serialize is None) != (s.deserialize is None):
        _fail("pass both `serialize` and `deserialize`, or neither", "serialize", "deserialize")
    if s.set_redis_ttl_readheavy:
        if s.timeout is None or not s.set_redis_ttl:
            _fail(
                "`set_redis_ttl_readheavy` requires a `timeout` and `set_redis_ttl`",
                "set_redis_ttl_readheavy",
                "timeout",
                "set_redis_ttl",
            )
        if s.timeout_trigger is not None or s.python_expires:
            _fail(
                "`set_redis_ttl_readheavy` is not compatible with `timeout_trigger` or "
                "`python_expires` (pass python_expires=False)",
                "set_redis_ttl_readheavy",
                "timeout_trigger",
                "python_expires",
            )
    _validate_cookie(s)
    _validate_prefix(s.prefix)
    if s.persistence not in PERSISTENCE_MODES:
        _fail(
            f"`persistence` must be one of {PERSISTENCE_MODES}, got {s.persistence!r}",
            "persistence",
        )
    if s.compress_threshold is not None and (
        not isinstance(s.compress_threshold, int) or s.compress_threshold < 0
    ):
        _fail("`compress_threshold` must be a number of bytes >= 0, or None", "compress_threshold")
    if s.compression not in COMPRESSIONS:
        _fail(f"`compression` must be one of {', '.join(COMPRESSIONS)}", "compression")
    if s.max_payload_bytes is not None and (
        isinstance(s.max_payload_bytes, bool)
        or not isinstance(s.max_payload_bytes, int)
        or s.max_payload_bytes <= 0
    ):
        _fail("`max_payload_bytes` must be a number of bytes > 0, or None", "max_payload_bytes")
    if not isinstance(s.cas_retries, int) or s.cas_retries < 0:
        _fail("`cas_retries` must be a whole number >= 0", "cas_retries")
    if s.on_conflict not in CONFLICT_POLICIES:
        _fail(f"`on_conflict` must be one of {CONFLICT_POLICIES}", "on_conflict")
    lifetime = s.user_index_lifetime
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
        _fail(
            f"`user_index_lifetime` must be a whole number of seconds > 0, got {lifetime!r}",
            "user_index_lifetime",
        )
    for name in LOCK_OPTIONS:
        value = getattr(s, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < math.inf
        ):
            _fail(f"`{name}` must be a number of seconds > 0, got {value!r}", name)


def _validate_security(s: SessionSettings) -> None:
    lifetime = s.max_lifetime
    if lifetime is not None and (
        isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0
    ):
        _fail(
            f"`max_lifetime` must be a whole number of seconds > 0, got {lifetime!r}",
            "max_lifetime",
        )
    for name in SECRET_OPTIONS:
        if not isinstance(getattr(s, name), bool):
            _fail(f"`{name}` must be True or False", name)
    for name in SECRET_OPTIONS:
        if getattr(s, name) and not s.secret:
            _fail(
                f"`{name}` needs a `secret` (a `cookie_signer` alone is not enough)", name, "secret"
            )
    if s.unsigned_payloads not in UNSIGNED_PAYLOAD_POLICIES:
        _fail(
            f"`unsigned_payloads` must be one of {UNSIGNED_PAYLOAD_POLICIES}",
            "unsigned_payloads",
        )


def _validate_prefix(prefix: object) -> None:
    """A ``prefix`` is a string whose first ``{``, if any, opens a Redis Cluster hash tag.

    Redis hashes the text between a key's first ``{`` and the first ``}`` after it, if
    not empty, else the whole key. A ``{`` in the prefix that opens no tag (``app{sess:``,
    ``{}app:``) would be that first ``{`` of every key: the tag ``regenerate_id()`` puts
    after the prefix could not keep a session in its hash slot, and its save would fail.
    """
    if prefix is None:
        return
    if not isinstance(prefix, str):
        _fail(f"`prefix` must be a string, got {prefix!r}", "prefix")
    elif "{" in prefix and hash_tag(prefix) is None:
        _fail(
            f'`prefix` {prefix!r} has a "{{" that opens no Redis Cluster hash tag (no '
            '"}" after it, or an empty "{}"): an unclosed "{" defeats the hash tags '
            "that keep a session's key in its slot, so regenerate_id() could not save. "
            'Close the tag (e.g. "{app}:") or leave the "{" out',
            "prefix",
        )


# A cookie name (RFC 6265 token) that WebOb will write: not starting with "$" and not
# the name of a cookie attribute.
TOKEN_CHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"  # RFC 7230 tchar
COOKIE_NAME_PATTERN = TOKEN_CHAR + "+"
_COOKIE_ATTRIBUTES = frozenset(
    ("expires", "path", "comment", "domain", "max-age", "secure", "httponly", "samesite")
)
# Cookie name prefixes browsers enforce (RFC 6265bis): both need Secure; __Host- also
# Path=/ and no Domain. Matched case-insensitively, as current browsers do.
HOST_PREFIX = "__host-"
SECURE_PREFIXES = ("__secure-", HOST_PREFIX)


def _validate_cookie(s: SessionSettings) -> None:
    name = s.cookie_name
    if (
        not isinstance(name, str)
        or not re.fullmatch(COOKIE_NAME_PATTERN, name, re.ASCII)
        or name.startswith("$")
        or name.lower() in _COOKIE_ATTRIBUTES
    ):
        _fail(
            "`cookie_name` must be a cookie name: letters, digits and !#$%&'*+-.^_`|~, not "
            "starting with $ and not a cookie attribute (path, domain...)",
            "cookie_name",
        )
    lowered = name.lower()
    if lowered.startswith(SECURE_PREFIXES) and not s.cookie_secure:
        _fail(
            f"a `cookie_name` starting with {name[: name.index('-') + 1]} requires "
            "`cookie_secure=True` (browsers reject the cookie otherwise)",
            "cookie_name",
            "cookie_secure",
        )
    if lowered.startswith(HOST_PREFIX) and (s.cookie_domain is not None or s.cookie_path != "/"):
        _fail(
            "a `cookie_name` starting with __Host- requires `cookie_path='/'` and no "
            "`cookie_domain` (browsers reject the cookie otherwise)",
            "cookie_name",
            "cookie_path",
            "cookie_domain",
        )
    if s.cookie_partitioned and not s.cookie_secure:
        _fail(
            "`cookie_partitioned=True` requires `cookie_secure=True` (browsers reject a "
            "Partitioned cookie without Secure)",
            "cookie_partitioned",
            "cookie_secure",
        )
    if s.cookie_samesite is not None:
        if str(s.cookie_samesite).lower() not in SAMESITE_VALUES:
            _fail(f"`cookie_samesite` must be one of {SAMESITE_VALUES}", "cookie_samesite")
        if str(s.cookie_samesite).lower() == "none" and not s.cookie_secure:
            _fail(
                "`cookie_samesite='none'` requires `cookie_secure=True` (browsers and WebOb "
                "reject it otherwise)",
                "cookie_samesite",
                "cookie_secure",
            )


# -- ini settings -------------------------------------------------------------


def _none_or(convert: Callable[[str], Any]) -> Callable[[Any], Any]:
    def converter(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if value in ("", "None", "none", "null"):
            return None
        return convert(value)

    return converter


_TRUE = frozenset(("true", "yes", "on", "y", "t", "1"))
_FALSE = frozenset(("false", "no", "off", "n", "f", "0"))


def _strict_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise ValueError(f"not a boolean: {value!r}")


def _seconds_delta(value: str) -> datetime.timedelta:
    return datetime.timedelta(seconds=int(value))


def _dotted(resolver: DottedNameResolver) -> Callable[[Any], Any]:
    return _none_or(resolver.maybe_resolve)


def _dotted_list(resolver: DottedNameResolver) -> Callable[[Any], Any]:
    """Whitespace-separated dotted names (or a sequence of objects) -> a tuple."""

    def converter(value: Any) -> tuple[Any, ...]:
        names = value.split() if isinstance(value, str) else value
        return tuple(resolver.maybe_resolve(name) for name in names)

    return converter


_BOOL = _none_or(_strict_bool)
_INT = _none_or(int)
_FLOAT = _none_or(float)
_STR = _none_or(str)
# 1.8 read 0 as None for these ini integers (for cookie_max_age: not "delete at once").
_INT_ZERO_NONE = _none_or(lambda value: int(value) or None)


# Several ini "secrets" one of which is shorter than this look like a 1.8 secret that
# held spaces (a passphrase), now split into words: said at start-up.
WORD_LIKE_SECRET = 16


def _secrets(value: str) -> str | tuple[str, ...]:
    """``redis.sessions.secret``: one secret, or several separated by whitespace."""
    parts = value.split()
    if len(parts) > 1 and min(map(len, parts)) < WORD_LIKE_SECRET:
        log.warning(
            "redis.sessions.secret is read as %d secrets (split on whitespace: the first "
            "signs, the others only verify), one of them under %d characters: a 1.8 secret "
            "containing spaces is no longer one secret. Put each secret of a rotation on a "
            "line of its own, and replace a secret with spaces by one without",
            len(parts),
            WORD_LIKE_SECRET,
        )
    return parts[0] if len(parts) == 1 else tuple(parts)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "secret": _none_or(_secrets),
    "timeout": _INT_ZERO_NONE,
    "cookie_name": _STR,
    "cookie_max_age": _INT_ZERO_NONE,
    "cookie_path": _STR,
    "cookie_domain": _STR,
    "cookie_secure": _BOOL,
    "cookie_httponly": _BOOL,
    "cookie_expires": _none_or(_seconds_delta),
    "cookie_comment": _STR,
    "cookie_samesite": _STR,
    "cookie_partitioned": _BOOL,
    "cookie_cache_control": _BOOL,
    "cookie_on_exception": _BOOL,
    "redis_url": _STR,
    "redis_host": _STR,
    "redis_port": _INT,
    "redis_db": _INT,
    "redis_password": _STR,
    "redis_username": _STR,
    "redis_socket_timeout": _FLOAT,
    "redis_socket_connect_timeout": _FLOAT,
    "redis_encoding": _STR,
    "redis_encoding_errors": _STR,
    "redis_unix_socket_path": _STR,
    "redis_ssl": _BOOL,
    "redis_ssl_ca_certs": _STR,
    "redis_ssl_certfile": _STR,
    "redis_ssl_keyfile": _STR,
    "redis_ssl_cert_reqs": str,  # "none" is one of its values, not a missing one
    "sentinels": _none_or(parse_sentinels),
    "sentinel_service": _STR,
    "sentinel_username": _STR,
    "sentinel_password": _STR,
    "sentinel_ssl": _BOOL,
    "cluster_nodes": _none_or(parse_cluster_nodes),
    "shards": _none_or(parse_shards),
    "prefix": _STR,
    "set_redis_ttl": _BOOL,
    "set_redis_ttl_readheavy": _BOOL,
    "detect_changes": _BOOL,
    "deserialized_fails_new": _BOOL,
    "timeout_trigger": _INT_ZERO_NONE,
    "python_expires": _BOOL,
    "invalidate_empty_session": _BOOL,
    "persistence": _STR,
    "cas_retries": _INT,
    "on_conflict": _STR,
    "lock_timeout": _FLOAT,
    "lock_wait": _FLOAT,
    "degraded_mode": _BOOL,
    "compress_threshold": _INT,
    "compression": _STR,
    "max_lifetime": _INT_ZERO_NONE,
    "hash_keys": _BOOL,
    "sign_payloads": _BOOL,
    "unsigned_payloads": _STR,
    "user_index_lifetime": _INT,
    "max_payload_bytes": _INT,
}
_DOTTED = (*_CALLABLES, "cookie_signer", "redis_connection_pool")


def option_name(key: str) -> str | None:
    """The option an ini key sets (``redis.sessions.client_callable`` -> its alias target)."""
    if not key.startswith(INI_PREFIX):
        return None
    name = key[len(INI_PREFIX) :]
    return OPTION_ALIASES.get(name, name)


def resolved_dotted_names(
    settings: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """The ini keys of dotted-name options, with the objects ``options`` resolved them to.

    ``config.include`` of 1.8 left these resolved in ``registry.settings`` (other values
    stay as the ini file wrote them).
    """
    return {
        key: options[name]
        for key in settings
        if (name := option_name(key)) in _DOTTED and name in options
    }


def parse_ini_settings(
    settings: Mapping[str, Any], resolver: DottedNameResolver | None = None
) -> dict[str, Any]:
    """Coerce the ``redis.sessions.*`` entries of ``settings`` to factory options."""
    resolver = resolver or DottedNameResolver()
    converters = dict(_CONVERTERS)
    converters.update(dict.fromkeys(_DOTTED, _dotted(resolver)))
    converters["event_listeners"] = _dotted_list(resolver)
    options: dict[str, Any] = {}
    for key, raw in settings.items():
        name = option_name(key)
        if name is None:
            continue
        converter = converters.get(name)
        if converter is None:
            raise ConfigurationError(f"unknown setting {key!r}", key)
        try:
            options[name] = converter(raw)
        except ConfigurationError as exc:  # says what is wrong without echoing secrets
            raise ConfigurationError(f"invalid value for {key!r}: {exc}", key) from exc
        except (ValueError, TypeError, ImportError, AttributeError) as exc:
            raise ConfigurationError(f"invalid value for {key!r}: {raw!r} ({exc})", key) from exc
    return options
