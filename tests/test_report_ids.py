"""Exceptions never show a session id: ``str()`` has a keyed hash, ``.session_id`` the id."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import redis
import webtest
from pyramid.request import Request

from pyramid_session_redis import RedisSessionFactory
from pyramid_session_redis.cookie import make_signer
from pyramid_session_redis.exceptions import (
    BackendUnavailable,
    InvalidSession,
    InvalidSession_NotInBackend,
    InvalidSession_PastLifetime,
    InvalidSession_PayloadTampered,
    InvalidSession_PayloadTimeout,
    SessionGone,
    SessionWriteConflict,
)
from pyramid_session_redis.factory import SessionFactory
from tests.app import SECRET, build_wsgi_app


class Reports(list[Exception]):
    def __call__(self, request: Any, problem: Exception) -> None:
        self.append(problem)


def app_and_factory(
    redis_url: str, views: dict[str, Any] | None = None, **options: Any
) -> tuple[webtest.TestApp, SessionFactory]:
    factory = RedisSessionFactory(SECRET, redis_url=redis_url, **options)
    return webtest.TestApp(build_wsgi_app(factory, views)), factory


def assert_hides_the_id(report: Exception, session_id: str, factory: SessionFactory) -> None:
    """The id is an attribute only; every text form shows its keyed hash instead."""
    assert getattr(report, "session_id", None) == session_id
    for text in (str(report), repr(report), *map(str, report.args)):
        assert session_id not in text
    assert factory.log_id(session_id) in str(report)
    if isinstance(report, InvalidSession):
        assert report.log_id == factory.log_id(session_id)


def test_an_unknown_id_is_reported_by_its_hash(redis_url: str, redis_client: redis.Redis) -> None:
    reports = Reports()
    app, factory = app_and_factory(redis_url, func_invalid_logger=reports)
    session_id = "attacker-chosen-or-expired-id"
    cookie = "session=" + make_signer(SECRET).dumps(session_id).decode()
    app.get("/dump", headers={"Cookie": cookie})
    (report,) = reports
    assert type(report) is InvalidSession_NotInBackend
    assert_hides_the_id(report, session_id, factory)
    assert str(report) == f"session {factory.log_id(session_id)}: is not in Redis"


def test_an_expired_payload_is_reported_by_its_hash(
    redis_url: str, redis_client: redis.Redis
) -> None:
    reports = Reports()
    app, factory = app_and_factory(
        redis_url,
        func_invalid_logger=reports,
        set_redis_ttl=False,
        serialize=pickle.dumps,
        deserialize=pickle.loads,
    )
    app.get("/set", {"key": "a", "value": "1"})
    session_id = app.get("/session_id").json
    payload = pickle.loads(redis_client.get(session_id))
    payload["x"] = payload["c"] - 1
    redis_client.set(session_id, pickle.dumps(payload))
    reports.clear()
    assert app.get("/dump").json == {}
    (report,) = reports
    assert type(report) is InvalidSession_PayloadTimeout
    assert_hides_the_id(report, session_id, factory)


def test_a_session_gone_under_a_request_is_reported_by_its_hash(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def delete_then_write(request: Request) -> Any:
        request.session["later"] = 1
        redis_client.delete(request.session.session_id)
        return "ok"

    reports = Reports()
    app, factory = app_and_factory(
        redis_url, {"race": delete_then_write}, func_invalid_logger=reports
    )
    app.get("/set", {"key": "a", "value": "1"})
    session_id = app.get("/session_id").json
    reports.clear()
    app.get("/race")
    (report,) = reports
    assert type(report) is SessionGone
    assert_hides_the_id(report, session_id, factory)


def test_a_reported_conflict_carries_the_id_as_an_attribute_only(
    redis_url: str, redis_client: redis.Redis
) -> None:
    conflicts = Reports()
    holder: dict[str, SessionFactory] = {}

    def conflicting(request: Request) -> Any:
        request.session["k"] = "ours"
        other = Request.blank("/", headers={"Cookie": request.headers["Cookie"]})
        theirs = holder["factory"](other)
        theirs["k"] = "theirs"
        theirs.do_persist()
        return "ok"

    app, factory = app_and_factory(
        redis_url, {"conflict": conflicting}, func_conflict_logger=conflicts
    )
    holder["factory"] = factory
    app.get("/set", {"key": "k", "value": '"base"'})
    session_id = app.get("/session_id").json
    app.get("/conflict")
    (conflict,) = conflicts
    assert isinstance(conflict, SessionWriteConflict) and conflict.keys == ("k",)
    assert_hides_the_id(conflict, session_id, factory)


def test_reports_built_by_applications_keep_their_message() -> None:
    assert str(InvalidSession("custom")) == "custom"
    assert InvalidSession("custom").session_id is None
    assert str(InvalidSession_NotInBackend()) == ""
    unavailable = BackendUnavailable("down", KeyError("x"))
    assert str(unavailable) == "down" and isinstance(unavailable.error, KeyError)
    assert SessionWriteConflict("m", ("a",)).session_id is None


@pytest.mark.parametrize("kind", [InvalidSession_NotInBackend, SessionGone])
def test_a_report_survives_pickling_with_its_attributes(kind: type[InvalidSession]) -> None:
    """Error trackers pickle exceptions (e.g. to hand them to another process)."""
    report = kind(session_id="the-id", log_id="0123abcd")
    copy = pickle.loads(pickle.dumps(report))
    assert (type(copy), str(copy), copy.session_id, copy.log_id) == (
        kind,
        str(report),
        "the-id",
        "0123abcd",
    )


def test_an_over_age_session_is_reported_by_its_hash(
    redis_url: str, redis_client: redis.Redis
) -> None:
    from tests.test_max_lifetime import LIFETIME, App, age

    app = App(redis_url)
    key = app.start(user="alice")
    session_id = app.browser.get("/session_id").json
    age(app, redis_client, key, LIFETIME)
    app.reports.clear()
    app.browser.get("/dump")
    (report,) = app.reports
    assert type(report) is InvalidSession_PastLifetime
    assert_hides_the_id(report, session_id, app.factory)


def test_a_tampered_payload_is_reported_by_its_hash(
    redis_url: str, redis_client: redis.Redis
) -> None:
    reports = Reports()
    app, factory = app_and_factory(redis_url, func_invalid_logger=reports, sign_payloads=True)
    app.get("/set", {"key": "a", "value": "1"})
    session_id = app.get("/session_id").json
    key = factory.key(session_id)
    raw = bytearray(redis_client.get(key))
    raw[-1] ^= 1
    redis_client.set(key, bytes(raw), keepttl=True)
    reports.clear()
    assert app.get("/dump").json == {}
    (report,) = reports
    assert isinstance(report, InvalidSession_PayloadTampered)
    assert_hides_the_id(report, session_id, factory)
