"""Options are validated once, at start-up, with errors that name them."""

from __future__ import annotations

import datetime
import pickle
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError as PyramidConfigurationError

from pyramid_session_redis import RedisSessionFactory, session_factory_from_settings
from pyramid_session_redis.exceptions import ConfigurationError
from pyramid_session_redis.settings import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_LOCK_WAIT,
    DEFAULT_SOCKET_TIMEOUT,
    parse_ini_settings,
)


def test_defaults_match_version_1_8() -> None:
    s = RedisSessionFactory("secret").settings
    assert s.timeout == 1200
    assert s.cookie_name == "session"
    assert s.cookie_httponly is True
    assert s.cookie_secure is False
    assert s.cookie_path == "/"
    assert s.cookie_on_exception is True
    assert s.set_redis_ttl is True
    assert s.detect_changes is True
    assert s.invalidate_empty_session is True
    assert s.redis_host == "localhost" and s.redis_port == 6379 and s.redis_db == 0
    assert s.redis_socket_timeout == DEFAULT_SOCKET_TIMEOUT


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"set_redis_ttl_readheavy": True}, "python_expires"),
        ({"set_redis_ttl_readheavy": True, "python_expires": False, "timeout": None}, "timeout"),
        (
            {"set_redis_ttl_readheavy": True, "python_expires": False, "set_redis_ttl": False},
            "set_redis_ttl",
        ),
        (
            {"set_redis_ttl_readheavy": True, "python_expires": False, "timeout_trigger": 60},
            "timeout_trigger",
        ),
        ({"serialize": pickle.dumps}, "deserialize"),
        ({"cookie_samesite": "none"}, "cookie_secure"),
        ({"cookie_samesite": "sometimes"}, "cookie_samesite"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "1200"}, "timeout"),
        ({"id_generator": "not callable"}, "id_generator"),
        ({"persistence": "yolo"}, "persistence"),
        ({"compression": "lz4"}, "compression"),
        ({"cookie_name": "path"}, "cookie_name"),
        ({"cookie_name": "$session"}, "cookie_name"),
        ({"cookie_name": "my session"}, "cookie_name"),
        ({"cookie_name": "sessión"}, "cookie_name"),
        ({"cookie_name": ""}, "cookie_name"),
        ({"compress_threshold": -1}, "compress_threshold"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"cookie_signer": object()}, "cookie_signer"),
        ({"persistence": "lock", "lock_timeout": 0}, "lock_timeout"),
        ({"persistence": "lock", "lock_timeout": -1.5}, "lock_timeout"),
        ({"persistence": "lock", "lock_timeout": "10"}, "lock_timeout"),
        ({"persistence": "lock", "lock_timeout": True}, "lock_timeout"),
        ({"persistence": "lock", "lock_timeout": None}, "lock_timeout"),
        ({"persistence": "lock", "lock_timeout": float("inf")}, "lock_timeout"),
        ({"persistence": "lock", "lock_wait": 0}, "lock_wait"),
        ({"persistence": "lock", "lock_wait": float("nan")}, "lock_wait"),
        # Lock options without the lock mode: a forgotten `persistence = lock`.
        ({"lock_wait": 2}, "persistence"),
        ({"persistence": "cas", "lock_timeout": 2}, "lock_timeout"),
        ({"prefix": 123}, "prefix"),
        ({"prefix": b"app:"}, "prefix"),
    ],
)
def test_invalid_combinations_raise_at_start_up(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisSessionFactory("secret", **options)
    assert named in info.value.options
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PyramidConfigurationError)


def test_secret_or_signer_is_required() -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        RedisSessionFactory()


def test_zero_timeout_means_no_timeout() -> None:
    assert RedisSessionFactory("s", timeout=0).settings.timeout is None


def test_samesite_none_with_secure_is_accepted() -> None:
    settings = RedisSessionFactory("s", cookie_samesite="None", cookie_secure=True).settings
    assert settings.cookie_samesite == "None"


def test_ini_strings_are_coerced() -> None:
    options = parse_ini_settings(
        {
            "redis.sessions.secret": "s",
            "redis.sessions.timeout": "60",
            "redis.sessions.cookie_secure": "true",
            "redis.sessions.cookie_httponly": "false",
            "redis.sessions.cookie_max_age": "None",
            "redis.sessions.cookie_expires": "3600",
            "redis.sessions.redis_socket_timeout": "2.5",
            "redis.sessions.redis_port": "6380",
            "redis.sessions.serialize": "pickle.dumps",
            "redis.sessions.deserialize": "pickle.loads",
            "redis.sessions.func_check_response_allow_cookies": (
                "pyramid_session_redis.check_response_allow_cookies"
            ),
            "other.setting": "ignored",
        }
    )
    assert options["timeout"] == 60
    assert options["cookie_secure"] is True
    assert options["cookie_httponly"] is False
    assert options["cookie_max_age"] is None
    assert options["cookie_expires"] == datetime.timedelta(seconds=3600)
    assert options["redis_socket_timeout"] == 2.5
    assert options["redis_port"] == 6380
    assert options["serialize"] is pickle.dumps
    assert "other.setting" not in options


def test_ini_socket_timeout_float_does_not_crash_start_up() -> None:
    # 1.8.1 crashed on this line of an ini file.
    factory = session_factory_from_settings(
        {"redis.sessions.secret": "s", "redis.sessions.redis_socket_timeout": "2.5"}
    )
    assert factory.settings.redis_socket_timeout == 2.5


def test_ini_documented_aliases_are_accepted() -> None:
    # 1.8's documentation names these, its factory rejected them.
    factory = session_factory_from_settings(
        {
            "redis.sessions.secret": "s",
            "redis.sessions.client_callable": "tests.test_settings.client_callable",
            "redis.sessions.redis_errors": "replace",
        }
    )
    assert factory.settings.redis_client_callable is client_callable
    assert factory.settings.redis_encoding_errors == "replace"


def client_callable(request: Any, **options: Any) -> Any:
    raise NotImplementedError


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("redis.sessions.no_such_thing", "1"),
        ("redis.sessions.timeout", "soon"),
        ("redis.sessions.cookie_secure", "perhaps"),
        ("redis.sessions.serialize", "no.such.module.dumps"),
    ],
)
def test_bad_ini_settings_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        session_factory_from_settings({"redis.sessions.secret": "s", key: value})
    assert key in str(info.value)


def test_include_reads_ini_settings() -> None:
    config = Configurator(settings={"redis.sessions.secret": "s", "redis.sessions.timeout": "30"})
    config.include("pyramid_session_redis")
    config.commit()
    from pyramid.interfaces import ISessionFactory

    factory = config.registry.getUtility(ISessionFactory)
    assert factory.settings.timeout == 30


def test_include_rejects_invalid_combination_at_start_up() -> None:
    config = Configurator(
        settings={"redis.sessions.secret": "s", "redis.sessions.set_redis_ttl_readheavy": "true"}
    )
    with pytest.raises(ConfigurationError):
        config.include("pyramid_session_redis")


def test_ini_prefix_goes_on_generated_ids() -> None:
    factory = session_factory_from_settings(
        {"redis.sessions.secret": "s", "redis.sessions.prefix": "shop:"}
    )
    session_id = factory.new_id()
    assert session_id.startswith("shop:") and len(session_id) == len("shop:") + 64


# -- the prefix's "{": it must open a Redis Cluster hash tag (regenerate_id() needs one)

# The first "{" has no "}" after it, or an empty "{}": Redis hashes such keys whole.
REFUSED_PREFIXES = ["app{sess:", "{", "sess{", "{}app:", "app:{}{b}"]
# No "{", a closed tag first, or "}" alone (test_regenerate_id.py logs in under each).
ACCEPTED_PREFIXES = ["", "app:", "{app}:", "app}:", "}{a}:", "{a}{", "a{b}c{"]


def assert_refuses_the_prefix(error: ConfigurationError, prefix: str) -> None:
    assert error.options == ("prefix",)
    message = str(error)
    assert message.startswith(f'`prefix` {prefix!r} has a "{{" that opens no Redis Cluster')
    assert 'an unclosed "{" defeats the hash tags' in message
    assert "regenerate_id()" in message


@pytest.mark.parametrize("prefix", REFUSED_PREFIXES)
def test_a_prefix_whose_brace_opens_no_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisSessionFactory("s", prefix=prefix)
    assert_refuses_the_prefix(info.value, prefix)


@pytest.mark.parametrize("prefix", REFUSED_PREFIXES)
def test_an_ini_prefix_whose_brace_opens_no_hash_tag_is_refused(prefix: str) -> None:
    settings = {"redis.sessions.secret": "s", "redis.sessions.prefix": prefix}
    with pytest.raises(ConfigurationError) as info:
        session_factory_from_settings(settings)
    assert_refuses_the_prefix(info.value, prefix)
    with pytest.raises(ConfigurationError) as info:
        Configurator(settings=settings).include("pyramid_session_redis")
    assert_refuses_the_prefix(info.value, prefix)


@pytest.mark.parametrize("prefix", ACCEPTED_PREFIXES)
def test_prefixes_without_a_dangling_brace_are_accepted(prefix: str) -> None:
    from_kwargs = RedisSessionFactory("s", prefix=prefix)
    from_ini = session_factory_from_settings(
        {"redis.sessions.secret": "s", "redis.sessions.prefix": prefix}
    )
    for factory in (from_kwargs, from_ini):
        assert factory.new_id().startswith(prefix)


@pytest.mark.parametrize(
    ("ini", "threshold", "compression"),
    [({}, 1024, "zstd"), ({"compress_threshold": "none", "compression": "zlib"}, None, "zlib")],
)
def test_compression_from_ini(ini: dict[str, str], threshold: int | None, compression: str) -> None:
    settings = {f"redis.sessions.{k}": v for k, v in ini.items()}
    factory = session_factory_from_settings({"redis.sessions.secret": "s", **settings})
    assert factory.settings.compress_threshold == threshold
    assert factory.settings.compression == compression


@pytest.mark.parametrize("mode", ["cas", "overwrite", "lock"])
def test_persistence_mode_from_ini(mode: str) -> None:
    factory = session_factory_from_settings(
        {"redis.sessions.secret": "s", "redis.sessions.persistence": mode}
    )
    assert factory.settings.persistence == mode


def test_lock_mode_defaults() -> None:
    s = RedisSessionFactory("s", persistence="lock").settings
    assert (s.lock_timeout, s.lock_wait) == (DEFAULT_LOCK_TIMEOUT, DEFAULT_LOCK_WAIT) == (10, 5)
    assert s.lock_lease_ms == 10_000
    assert (
        RedisSessionFactory("s", persistence="lock", lock_timeout=0.0001).settings.lock_lease_ms
        == 1
    )


def test_lock_options_from_ini() -> None:
    factory = session_factory_from_settings(
        {
            "redis.sessions.secret": "s",
            "redis.sessions.persistence": "lock",
            "redis.sessions.lock_timeout": "2.5",
            "redis.sessions.lock_wait": " 1 ",
        }
    )
    s = factory.settings
    assert (s.persistence, s.lock_timeout, s.lock_wait, s.lock_lease_ms) == ("lock", 2.5, 1, 2500)


@pytest.mark.parametrize(
    ("ini", "named"),
    [
        ({"lock_timeout": "soon"}, "redis.sessions.lock_timeout"),
        ({"lock_wait": "-1"}, "lock_wait"),
        ({"lock_wait": "none"}, "lock_wait"),
        ({"persistence": "cas", "lock_wait": "1"}, "lock_wait"),
    ],
)
def test_bad_lock_ini_settings_name_the_option(ini: dict[str, str], named: str) -> None:
    settings = {"redis.sessions.persistence": "lock"}
    settings.update({f"redis.sessions.{k}": v for k, v in ini.items()})
    with pytest.raises(ConfigurationError) as info:
        session_factory_from_settings({"redis.sessions.secret": "s", **settings})
    assert named in str(info.value)


# -- configurations 1.8 started with: accepted, reinterpreted as 1.8 did, with a warning


@pytest.mark.parametrize(
    ("options", "named", "resolved"),
    [
        (
            {"timeout_trigger": 600, "python_expires": False},
            "python_expires",
            {"timeout_trigger": 600, "python_expires": True, "payload_expiry": True},
        ),
        (
            {"timeout": None, "timeout_trigger": 600},
            "timeout_trigger",
            {"timeout": None, "timeout_trigger": None},
        ),
        (
            {"timeout": 0, "timeout_trigger": 600},
            "timeout_trigger",
            {"timeout": None, "timeout_trigger": None},
        ),
        (
            {"set_redis_ttl": False, "python_expires": False},
            "set_redis_ttl=False with python_expires=False",
            {"timeout": 1200, "redis_ttl": False, "payload_expiry": False},
        ),
    ],
)
def test_configurations_1_8_reinterpreted_start_with_one_warning(
    options: dict[str, Any],
    named: str,
    resolved: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="pyramid_session_redis"):
        settings = RedisSessionFactory("secret", **options).settings
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert named in caplog.records[0].getMessage()
    assert {name: getattr(settings, name) for name in resolved} == resolved


def test_supported_configurations_start_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="pyramid_session_redis"):
        RedisSessionFactory("secret")
        RedisSessionFactory("secret", timeout_trigger=600)
        RedisSessionFactory("secret", set_redis_ttl=False)
        RedisSessionFactory("secret", timeout=0, set_redis_ttl=False, python_expires=False)
    assert caplog.records == []


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        ("correct horse battery staple", True),  # a 1.8 passphrase: now four secrets
        ("a-long-random-secret-number-one short", True),
        ("a-long-random-secret-number-one a-long-random-secret-number-two", False),
        ("\na-long-random-secret-number-one\na-long-random-secret-number-two", False),
        ("short", False),  # one secret, as 1.8 read it
    ],
)
def test_an_ini_secret_split_into_words_is_said_at_start_up(
    value: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="pyramid_session_redis"):
        options = parse_ini_settings({"redis.sessions.secret": value})
    assert options["secret"] == (tuple(value.split()) if len(value.split()) > 1 else value)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == warned
    if warned:
        assert f"read as {len(value.split())} secrets" in messages[0]
        assert not any(word in messages[0] for word in ("horse", "number-one", "short"))


@pytest.mark.parametrize("name", ["cookie_max_age", "timeout", "timeout_trigger"])
def test_ini_zero_means_none(name: str) -> None:
    """As in 1.8: ``cookie_max_age = 0`` is no Max-Age, not a cookie deleted at once."""
    options = parse_ini_settings({f"redis.sessions.{name}": "0"})
    assert options == {name: None}
    assert parse_ini_settings({f"redis.sessions.{name}": "30"}) == {name: 30}


def test_include_leaves_dotted_names_resolved_in_registry_settings() -> None:
    """As 1.8 did: callables resolved in ``registry.settings``, other values untouched."""
    settings = {
        "redis.sessions.secret": "s",
        "redis.sessions.timeout": "30",
        "redis.sessions.cookie_secure": "true",
        "redis.sessions.serialize": "pickle.dumps",
        "redis.sessions.deserialize": "pickle.loads",
        "redis.sessions.client_callable": "tests.test_settings.client_callable",
        "redis.sessions.func_check_response_allow_cookies": (
            "pyramid_session_redis.check_response_allow_cookies"
        ),
    }
    config = Configurator(settings=settings)
    config.include("pyramid_session_redis")
    from pyramid_session_redis import check_response_allow_cookies

    registry = config.registry.settings
    assert registry["redis.sessions.timeout"] == "30"
    assert registry["redis.sessions.cookie_secure"] == "true"
    assert registry["redis.sessions.serialize"] is pickle.dumps
    assert registry["redis.sessions.deserialize"] is pickle.loads
    assert registry["redis.sessions.client_callable"] is client_callable
    allow = registry["redis.sessions.func_check_response_allow_cookies"]
    assert allow is check_response_allow_cookies
