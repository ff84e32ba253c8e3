"""The demo in a real browser: Chromium (the system's package) driven by Selenium.

Real cookies (HttpOnly, SameSite), a form posted with its CSRF token, a flash message
across a redirect, logout deleting the session, and two browsers that never see each
other's data, against the demo served by waitress and the suite's Redis. Also makes the
README's screenshot of the demo (written to ``docs/demo.png`` when
``PSR_UPDATE_SCREENSHOT=1``).

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian: ``apt-get install
chromium chromium-driver``; ``.ci/run`` installs them). Without them these tests are
skipped, and the skip says so by name; with ``PSR_REQUIRE_BROWSER=1`` (set by CI) a
missing browser is an error instead. Nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.test_demo import COOKIE, demo_app, session_keys
from tests.wsgi_server import LiveServer

CHROMIUM = os.environ.get("PSR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PSR_CHROMEDRIVER", "/usr/bin/chromedriver")
HAS_BROWSER = all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))
SKIP_REASON = (
    f"browser tests (tests/test_browser.py) skipped: no Chromium at {CHROMIUM} and "
    f"{CHROMEDRIVER} (apt-get install chromium chromium-driver)"
)
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "demo.png"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1100,640",
)

if not HAS_BROWSER and os.environ.get("PSR_REQUIRE_BROWSER") == "1":
    raise RuntimeError(SKIP_REASON.replace("skipped", "required (PSR_REQUIRE_BROWSER=1)"))
if not HAS_BROWSER:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def base_url(redis_url: str) -> Iterator[str]:
    """The demo, as PasteDeploy builds it, served by waitress on a free port."""
    with LiveServer(demo_app(redis_url).app, threads=4) as server:
        yield f"http://127.0.0.1:{server.port}"


def start_browser(profile: Path) -> Any:
    """A headless Chromium with a fresh profile (its own cookie jar)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@pytest.fixture(scope="module")
def browsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    started: list[Any] = []
    try:
        for n in range(2):
            started.append(start_browser(tmp_path_factory.mktemp(f"chromium-profile-{n}")))
        yield started
    finally:
        for browser in started:
            browser.quit()


@pytest.fixture
def browser(browsers: list[Any], base_url: str, redis_client: redis.Redis) -> Any:
    """The first browser, without cookies, against an emptied Redis."""
    for each in browsers:
        each.get(base_url + "/static/demo.css")  # cookies are per site: visit it first
        each.delete_all_cookies()
    return browsers[0]


@pytest.fixture
def other_browser(browser: Any, browsers: list[Any]) -> Any:
    return browsers[1]


def click_and_wait(browser: Any, element_id: str) -> None:
    """Click a submit button and wait until the browser has left the page."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, element_id).click()
    WebDriverWait(browser, 15).until(lambda _: has_left(page))


def has_left(page: Any) -> bool:
    """Whether ``page`` (an element) is no longer in the document (stale)."""
    try:
        page.is_enabled()
    except WebDriverException:  # stale, or "does not belong to the document"
        return True
    return False


def visits(browser: Any) -> int:
    return int(browser.find_element(By.ID, "visits").text)


def flashes(browser: Any) -> list[str]:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".flash")]


def log_in(browser: Any, base_url: str, name: str) -> None:
    browser.get(base_url + "/login")
    browser.find_element(By.ID, "name").send_keys(name)
    click_and_wait(browser, "login")
    browser.find_element(By.ID, "visits")  # the home page, after the redirect


def test_real_cookie_and_a_counter_kept_in_redis(
    browser: Any, base_url: str, redis_client: redis.Redis
) -> None:
    browser.get(base_url + "/")
    assert visits(browser) == 1
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert "expiry" not in cookie  # a browser-session cookie
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: not for scripts
    browser.refresh()
    browser.refresh()
    assert visits(browser) == 3
    assert len(session_keys(redis_client)) == 1
    panel = browser.find_element(By.ID, "panel-commands").text
    assert re.fullmatch(r"\d+: .*GETEX 1.*", panel), panel


def test_login_form_posts_its_csrf_token_and_the_flash_survives_the_redirect(
    browser: Any, base_url: str, redis_client: redis.Redis
) -> None:
    browser.get(base_url + "/")
    before = browser.get_cookie(COOKIE)["value"]
    log_in(browser, base_url, "alice")
    assert browser.current_url == base_url + "/"  # 303 to the home page
    assert flashes(browser) == ["Welcome, alice!"]
    assert "Logged in as alice." in browser.find_element(By.CLASS_NAME, "who").text
    assert visits(browser) == 2  # the data moved to the new id
    assert browser.get_cookie(COOKIE)["value"] != before  # a new session id at login
    assert len(session_keys(redis_client)) == 1  # the old one is gone
    browser.refresh()
    assert flashes(browser) == []  # shown once

    browser.get(base_url + "/note")
    browser.find_element(By.ID, "text").send_keys("hello <b>")
    click_and_wait(browser, "save")
    assert browser.current_url == base_url + "/note"
    assert flashes(browser) == ["Saved note: hello <b>"]  # escaped, shown as text


def test_a_form_without_its_csrf_token_is_refused(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/login")
    browser.execute_script("document.querySelector('input[name=csrf_token]').remove()")
    browser.find_element(By.ID, "name").send_keys("mallory")
    click_and_wait(browser, "login")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Bad CSRF token"
    browser.get(base_url + "/")
    assert "Not logged in." in browser.find_element(By.CLASS_NAME, "who").text


def test_logout_deletes_the_session_and_its_cookie(
    browser: Any, base_url: str, redis_client: redis.Redis
) -> None:
    log_in(browser, base_url, "alice")
    assert len(session_keys(redis_client)) == 1
    click_and_wait(browser, "logout")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Logged out"
    assert browser.get_cookie(COOKIE) is None
    assert len(session_keys(redis_client)) == 0
    browser.get(base_url + "/")
    assert visits(browser) == 1
    assert "Not logged in." in browser.find_element(By.CLASS_NAME, "who").text


def test_two_browsers_never_see_each_others_data(
    browser: Any, other_browser: Any, base_url: str, redis_client: redis.Redis
) -> None:
    log_in(browser, base_url, "alice")
    for _ in range(3):
        browser.refresh()
    other_browser.get(base_url + "/")
    assert visits(other_browser) == 1
    assert "Not logged in." in other_browser.find_element(By.CLASS_NAME, "who").text
    log_in(other_browser, base_url, "bob")
    browser.refresh()
    assert "Logged in as alice." in browser.find_element(By.CLASS_NAME, "who").text
    assert visits(browser) == 5
    assert visits(other_browser) == 2
    assert browser.get_cookie(COOKIE)["value"] != other_browser.get_cookie(COOKIE)["value"]
    assert len(session_keys(redis_client)) == 2
    click_and_wait(other_browser, "logout")  # logs out bob only
    browser.refresh()
    assert "Logged in as alice." in browser.find_element(By.CLASS_NAME, "who").text
    assert len(session_keys(redis_client)) == 1


def test_your_sessions_ends_another_browsers_session(
    browser: Any, other_browser: Any, base_url: str, redis_client: redis.Redis
) -> None:
    log_in(browser, base_url, "alice")
    log_in(other_browser, base_url, "alice")
    browser.get(base_url + "/sessions")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#sessions tr")][1:]
    assert len(rows) == 2 and sum("(this browser)" in row for row in rows) == 1
    [other] = [row.split()[0] for row in rows if "(this browser)" not in row]
    click_and_wait(browser, f"end-{other}")
    assert flashes(browser) == ["That session was ended."]
    other_browser.refresh()
    assert "Not logged in." in other_browser.find_element(By.CLASS_NAME, "who").text
    click_and_wait(browser, "logout-everywhere")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Logged out everywhere"
    assert browser.get_cookie(COOKIE) is None
    assert len(session_keys(redis_client)) == 1  # the other browser's new, anonymous one


def test_screenshot_of_the_demo(browser: Any, base_url: str, tmp_path: Path) -> None:
    log_in(browser, base_url, "alice")
    browser.refresh()
    browser.get(base_url + "/note")
    browser.find_element(By.ID, "text").send_keys("sessions live in Redis")
    click_and_wait(browser, "save")
    assert flashes(browser) == ["Saved note: sessions live in Redis"]
    shot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert [width, height] == browser.execute_script(
        "return [window.innerWidth * devicePixelRatio, window.innerHeight * devicePixelRatio]"
    )
    if os.environ.get("PSR_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
