"""Every configuration example in the README works as written."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request

from pyramid_session_redis.cookie import make_signer
from pyramid_session_redis.exceptions import SessionBackendError
from pyramid_session_redis.settings import OPTION_NAMES

README = (Path(__file__).parent.parent / "README.md").read_text()
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost:443"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def counting_view(request: Request) -> Any:
    request.session["n"] = request.session.get("n", 0) + 1
    request.response.text = str(request.session["n"])
    return request.response


def serve(config: Configurator) -> webtest.TestApp:
    config.add_route("count", "/count")
    config.add_view(counting_view, route_name="count")
    return webtest.TestApp(config.make_wsgi_app())


def test_readme_opens_with_the_two_commands() -> None:
    first = blocks("sh")[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == [
        "python3 run.py demo",
        "python3 run.py test",
    ]
    assert README.index("```sh") < README.index("\n## ")


@pytest.mark.parametrize("block", blocks("ini"))
def test_ini_examples_build_a_working_app(block: str, redis_url: str) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(block)
    settings = dict(parser["app:main"])
    includes = settings.pop("pyramid.includes")
    settings["redis.sessions.redis_url"] = redis_url
    with Configurator(settings=settings) as config:
        config.include(includes)
        app = serve(config)
    app.extra_environ = HTTPS  # Secure cookies go back over https only
    assert app.get("/count").text == "1"
    assert app.get("/count").text == "2"


def test_the_production_block_sets_a_host_cookie(redis_url: str) -> None:
    block = README[README.index("## Security") :].split("```ini\n", 1)[1].split("```", 1)[0]
    parser = configparser.ConfigParser()
    parser.read_string(block)
    settings = dict(parser["app:main"])
    settings["redis.sessions.redis_url"] = redis_url
    with Configurator(settings=settings) as config:
        config.include(settings.pop("pyramid.includes"))
        app = serve(config)
    app.extra_environ = HTTPS
    response = app.get("/count")
    header = response.headers["Set-Cookie"]
    assert header.startswith("__Host-session=") and "Domain" not in header
    for attribute in ("Path=/", "secure", "HttpOnly", "SameSite=lax"):
        assert attribute in header
    assert response.headers["Cache-Control"] == 'no-cache="Set-Cookie"'
    assert app.get("/count").text == "2"
    (fresh,) = app.get("/count", headers={"Cookie": "__Host-session=forged"}).headers.getall(
        "Set-Cookie"
    )  # a forged cookie: a fresh session, cookied with the same attributes
    assert fresh.startswith("__Host-session=") and "secure" in fresh


@pytest.mark.parametrize("block", blocks("python"))
def test_python_examples_run(block: str, redis_url: str) -> None:
    namespace: dict[str, Any] = {"REDIS_URL": redis_url}
    exec(compile(block, "README.md", "exec"), namespace)


def test_quick_start_factory_serves_sessions(redis_url: str) -> None:
    namespace: dict[str, Any] = {"REDIS_URL": redis_url}
    exec(compile(blocks("python")[0], "README.md", "exec"), namespace)
    with Configurator(session_factory=namespace["factory"]) as config:
        app = serve(config)
    app.extra_environ = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost:443"}
    response = app.get("/count")
    assert "secure" in response.headers["Set-Cookie"].lower()
    assert app.get("/count").text == "2"


def test_503_example_maps_backend_errors() -> None:
    block = next(b for b in blocks("python") if "SessionBackendError" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    with Configurator() as config:
        from pyramid_session_redis import RedisSessionFactory

        config.set_session_factory(
            RedisSessionFactory("s", redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5)
        )
        config.add_exception_view(
            namespace["session_store_unavailable"], SessionBackendError, renderer="string"
        )
        app = serve(config)

    app.set_cookie("session", make_signer("s").dumps("a" * 64).decode())
    response = app.get("/count", status=503)
    assert "unavailable" in response.text


def test_every_option_is_in_the_configuration_reference() -> None:
    reference = README[README.index("## Configuration reference") : README.index("## The session")]
    missing = [name for name in OPTION_NAMES if f"`{name}`" not in reference]
    assert missing == []
