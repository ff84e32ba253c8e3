"""Sentinel, Cluster and shards configured from ini settings alone: what is particular to
each deployment, on real servers (tests/topologies.py).

A request-level smoke test per way of configuring (set, read, invalidate), credentials
(ACL users on the data nodes and the sentinels), TLS to the sentinels, shards of mixed
kinds, an app started before its Redis, a forked worker (gunicorn ``--preload``), the
README's ini blocks and the console tool. The request scenarios common to every
deployment are in test_topologies, the failovers in the test_failover_* modules.
Sentinel (with credentials), Cluster (conftest's) and shards are started once for this
module.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest
from pyramid.config import Configurator

from demo.throwaway_redis import free_port
from pyramid_session_redis.channel import LazyChannel
from pyramid_session_redis.factory import SessionFactory, session_factory_from_settings
from tests.app import SECRET, build_wsgi_app
from tests.servers import HOST, ServerFactory, find_server_binary
from tests.test_cli import bind, run
from tests.test_readme import README
from tests.test_tls import certs  # noqa: F401 - the session's certificates
from tests.tls import Certificates, start_tls_redis
from tests.topologies import (
    DATA_USER,
    SERVICE,
    ClusterWithReplicas,
    SentinelSet,
    Shards,
    Topology,
    started,
)
from tests.topology_app import PREFIX, Site, ini_settings, serve

KINDS = ["sentinel", "cluster-nodes", "cluster-url", "shards"]
FIXTURES = {"sentinel": "sentinel", "cluster": "cluster_deployment", "shards": "shards"}


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Topology]:
    yield from started(SentinelSet, credentials=True)


@pytest.fixture(scope="module")
def shards() -> Iterator[Topology]:
    yield from started(Shards)


@dataclasses.dataclass
class Deployment:
    """A running deployment and the ini options that reach it."""

    topology: Topology
    options: dict[str, str]  # beyond the topology's own settings

    @property
    def settings(self) -> dict[str, Any]:
        return ini_settings(self.topology, **self.options)

    def factory(self) -> SessionFactory:
        return session_factory_from_settings(self.settings)

    def site(self) -> Site:
        return serve(self.factory())

    def holds(self, key: str) -> bool:
        return self.topology.holds(key)


@pytest.fixture
def deploy(request: pytest.FixtureRequest) -> Any:
    """``deploy(kind)``: the module's deployment of that kind, emptied."""

    def deploy(kind: str) -> Deployment:
        topology: Topology = request.getfixturevalue(FIXTURES[kind.split("-")[0]])
        topology.flush()
        options = {}
        if kind == "cluster-url":
            options["cluster_nodes"] = f"redis://{HOST}:{topology.masters()[1].port}/0"
        return Deployment(topology, options)

    return deploy


@pytest.mark.parametrize("kind", KINDS)
def test_sessions_set_read_and_invalidate_from_ini_settings(deploy: Any, kind: str) -> None:
    deployment = deploy(kind)
    site = deployment.site()
    browsers = [site.browser() for _ in range(6)]
    ids = []
    for n, browser in enumerate(browsers):
        browser.get("/set", {"key": "n", "value": json.dumps(n)})
        ids.append(browser.get("/session_id").json)
        assert deployment.holds(ids[-1])
    for n, browser in enumerate(browsers):
        assert browser.get("/read", {"key": "n"}).json == n
    browsers[0].get("/invalidate")
    assert not deployment.holds(ids[0])
    assert browsers[0].get("/dump").json == {}
    assert browsers[1].get("/read", {"key": "n"}).json == 1


def test_the_sentinel_setup_uses_each_credential(deploy: Any) -> None:
    """The sentinels refuse a client without their password; the data nodes' sessions
    are the ACL user ``redis_username`` names."""
    setup = deploy("sentinel").topology
    anonymous = redis.Redis(host=HOST, port=setup.sentinels[0].port)
    with anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
    factory = session_factory_from_settings(ini_settings(setup, redis_db="3"))
    app = webtest.TestApp(build_wsgi_app(factory))
    app.get("/set", {"key": "k", "value": "1"})
    with setup.data_client(setup.master) as master:
        assert master.execute_command("SELECT", 3) and master.dbsize() == 1
        users = {c["user"] for c in master.client_list() if c.get("db") == "3"}
    assert DATA_USER in users


@pytest.mark.parametrize("kind", ["sentinel", "cluster-nodes"])
def test_an_app_starts_before_its_redis_and_recovers(kind: str) -> None:
    """Nothing is contacted at start-up: requests get the typed error (a 503 here)
    while the servers are down, and work once they are up."""
    late: SentinelSet | ClusterWithReplicas = (  # the sentinels / the nodes not started
        SentinelSet(credentials=True, start=False)
        if kind == "sentinel"
        else ClusterWithReplicas(replicas=0, start=False)
    )
    try:
        app = Deployment(late, {}).site().browser()  # the factory is built: no server answers
        assert app.get("/set", {"key": "k", "value": "1"}, status=503).status_int == 503
        assert app.get("/untouched").json == "untouched"
        late.start()
        app.get("/set", {"key": "k", "value": "1"})
        assert app.get("/read", {"key": "k"}).json == 1
    finally:
        late.close()


@pytest.mark.parametrize("kind", ["sentinel", "cluster-nodes", "shards"])
def test_a_forked_worker_uses_sessions_and_the_parent_keeps_working(deploy: Any, kind: str) -> None:
    deployment = deploy(kind)
    site = deployment.site()  # built before the fork, as gunicorn --preload does
    app = site.browser()
    app.get("/set", {"key": "who", "value": json.dumps("parent")})  # connections open
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a session of its own and the parent's, then leave at once
        code = 1
        try:
            child = site.browser()
            child.get("/set", {"key": "who", "value": json.dumps("child")})
            seen = [child.get("/read", {"key": "who"}).json, app.get("/read", {"key": "who"}).json]
            os.write(write_end, json.dumps([seen, child.get("/session_id").json]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reported = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, reported
    seen, child_id = json.loads(reported)
    assert seen == ["child", "parent"]
    assert app.get("/read", {"key": "who"}).json == "parent"  # the parent's connections
    assert deployment.holds(child_id)
    app.get("/set", {"key": "who", "value": json.dumps("parent again")})
    assert app.get("/read", {"key": "who"}).json == "parent again"


# --------------------------------------------------------------------------- the README


def readme_block(kind: str) -> dict[str, str]:
    """The ``[app:main]`` settings of the README's ``ini KIND`` block."""
    text = README.split(f"```ini {kind}\n", 1)[1].split("```", 1)[0]
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return dict(parser["app:main"])


@pytest.mark.parametrize(
    ("block", "kind", "not_ours"),
    [
        ("sentinel", "sentinel", ()),
        # the suite's cluster has no ACL users
        ("cluster", "cluster-nodes", ("redis_username", "redis_password")),
        ("shards", "shards", ()),
    ],
)
def test_the_readme_deployment_blocks_work(
    deploy: Any, block: str, kind: str, not_ours: tuple[str, ...]
) -> None:
    """Each block builds a factory as written (nothing is contacted at start-up), and
    serves sessions once its addresses and credentials are the suite's servers'."""
    settings = readme_block(block)
    assert session_factory_from_settings(settings).settings.topology == kind.split("-")[0]
    deployment = deploy(kind)
    for name in not_ours:
        del settings[f"redis.sessions.{name}"]
    ours = {key for key in settings if key.startswith("redis.sessions.")}
    assert ours - set(deployment.settings) <= {"redis.sessions.redis_db"}  # all replaced
    with Configurator(settings={**settings, **deployment.settings}) as config:
        config.include(settings["pyramid.includes"])
        config.add_route("incr", "/incr")
        config.add_view(
            lambda request: request.session.incr("n"), route_name="incr", renderer="json"
        )
        app = webtest.TestApp(config.make_wsgi_app())
    assert [app.get("/incr").json for _ in range(3)] == [1, 2, 3]


# --------------------------------------------------------------------------- the console tool


@pytest.mark.parametrize("kind", ["sentinel", "cluster-nodes", "shards"])
def test_the_console_tool_reads_a_deployments_ini(
    deploy: Any,
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = deploy(kind)
    site = deployment.site()
    for n in range(5):
        site.browser().get("/set", {"key": "n", "value": str(n)})
    code, out, err = run(capsys, "-c", app_ini(tmp_path, deployment.settings), "stats", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["nodes"], report["count"]) == (1 if kind == "sentinel" else 3, 5)


def test_every_console_command_works_on_shards(
    deploy: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each id is looked for on the shard the slot table names, as the application does;
    the walks cover every shard; a user's sessions are revoked wherever they are."""
    deployment = deploy("shards")
    topology = deployment.topology
    site = serve(deployment.factory(), {"bind": bind})

    def new_session(n: int) -> tuple[webtest.TestApp, str]:
        browser = site.browser()
        browser.get("/set", {"key": "n", "value": str(n)})
        return browser, browser.get("/session_id").json

    # Random ids: sessions are made until every shard holds one (bounded), so that no
    # shard is left out by chance.
    unbound: dict[int, str] = {}  # shard port -> an id it holds
    made = []
    while len(unbound) < len(topology.masters()) and len(made) < 200:
        made.append(new_session(len(made))[1])
        unbound.setdefault(topology.node_for(made[-1]).port, made[-1])
    assert len(unbound) == len(topology.masters())
    bound = []
    for n in range(12):
        browser, session_id = new_session(n)
        browser.get("/bind", {"user": "dana"})
        bound.append(session_id)
    ini = ["-c", app_ini(tmp_path, deployment.settings)]

    code, out, err = run(capsys, *ini, "stats", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["nodes"], report["count"]) == (3, len(made) + 12 + 1)  # and dana's index

    # one id per shard: shown, then revoked, from the shard that holds it
    for session_id in unbound.values():
        code, out, err = run(capsys, *ini, "show", session_id, "--reveal", "--json")
        assert code == 0, err
        assert json.loads(out)["data"] == {"n": made.index(session_id)}
        assert run(capsys, *ini, "revoke", session_id)[0] == 0
        assert not topology.holds(session_id)
        assert run(capsys, *ini, "show", session_id)[0] == 1

    code, out, err = run(capsys, *ini, "revoke-user", "dana")
    assert (code, out) == (0, "revoked 12 sessions of user 'dana'\n"), err
    assert not any(topology.holds(session_id) for session_id in bound)
    code, out, err = run(capsys, *ini, "stats", "--json")
    # the sessions not revoked, and dana's index (its entries stay until they settle)
    assert json.loads(out)["count"] == len(made) - 3 + 1, err


def test_the_console_tool_names_the_shard_it_cannot_reach(
    deploy: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = deploy("shards").settings
    down = f"redis://:hunter2@{HOST}:{free_port()}/0"
    settings["redis.sessions.shards"] += f" {down}"
    code, out, err = run(capsys, "-c", app_ini(tmp_path, settings), "stats")
    assert (code, out) == (2, "")
    assert err.startswith("pyramid-session-redis: cannot use the shard redis://:***@"), err
    assert "hunter2" not in err


def app_ini(tmp_path: Path, settings: dict[str, Any]) -> str:
    """An ini file with ``settings`` for the console tool (which never builds the app)."""
    lines = ["[app:main]", "use = call:tests.test_cli:wsgi_app"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    ini_file = tmp_path / "app.ini"
    ini_file.write_text("\n".join(lines) + "\n")
    return str(ini_file)


# --------------------------------------------------------------------------- TLS


def test_tls_to_the_sentinels_with_sentinel_ssl(
    certs: Certificates,  # noqa: F811 - the fixture
) -> None:
    """The sentinels are reached with TLS only; the data nodes without (``redis_ssl`` is
    theirs)."""
    with contextlib.closing(SentinelSet(credentials=True, sentinel_tls=certs)) as setup:
        settings = ini_settings(setup)
        assert settings[PREFIX + "sentinel_ssl"] == "true"
        app = webtest.TestApp(build_wsgi_app(session_factory_from_settings(settings)))
        app.get("/set", {"key": "k", "value": "1"})
        assert app.get("/read", {"key": "k"}).json == 1
        with setup.data_client(setup.master) as master:
            assert master.dbsize() == 1
        plain = {  # no TLS: the sentinels' TLS port does not answer
            key: value for key, value in settings.items() if "ssl" not in key
        }
        refused = serve(session_factory_from_settings(plain)).browser()
        assert refused.get("/set", {"key": "k", "value": "1"}, status=503)


def test_shards_mix_tls_plain_and_unix_socket_servers(
    server_factory: ServerFactory,
    certs: Certificates,  # noqa: F811 - the fixture
) -> None:
    """The certificate options apply to the rediss:// shards only; sessions are made
    until every shard holds some."""
    secure = start_tls_redis(server_factory, certs, client_auth=False, binary=find_server_binary())
    with secure:
        plain, local = server_factory(), server_factory()
        shards = f"{secure.url()} {plain.url} unix://{local.unix_socket}?db=0"
        settings = {PREFIX + "secret": SECRET, PREFIX + "shards": shards}
        settings[PREFIX + "redis_ssl_ca_certs"] = str(certs.ca)
        site = serve(session_factory_from_settings(settings))
        servers = (secure.plain, plain, local)
        made: list[webtest.TestApp] = []
        while len(made) < 12 or min(server.client().dbsize() for server in servers) == 0:
            assert len(made) < 300  # a shard without sessions after 300: (2/3)**300
            browser = site.browser()
            browser.get("/set", {"key": "n", "value": str(len(made))})
            made.append(browser)
        assert sum(server.client().dbsize() for server in servers) == len(made)
        assert [b.get("/read", {"key": "n"}).json for b in made] == list(range(len(made)))


def test_concurrent_first_requests_build_one_cluster_client(
    deploy: Any,
) -> None:
    deployment = deploy("cluster-nodes")
    factory = deployment.factory()
    lazy = factory.store_for(None).channel  # type: ignore[attr-defined]
    assert isinstance(lazy, LazyChannel)
    built: list[Any] = []
    real_build = lazy._build
    start = threading.Barrier(8)

    def counting_build() -> Any:
        client = real_build()
        built.append(client)
        return client

    lazy._build = counting_build
    app = webtest.TestApp(build_wsgi_app(factory))

    def first_request(n: int) -> Any:
        browser = webtest.TestApp(app.app)
        start.wait(10)
        browser.get("/set", {"key": "n", "value": str(n)})
        return browser.get("/read", {"key": "n"}).json

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(first_request, range(8))) == list(range(8))
    assert len(built) == 1 and lazy.client is built[0]
