"""The web page in a real browser: headless Chromium (Debian's) driven by Selenium.

Submits demo.sleep from the page, watches its progress bar advance and its status turn
SUCCESSFUL without reloading, cancels another task (shown CANCELLED, not as a failure), and
writes a screenshot. On a phone-sized window: no sideways scrolling, and a refused submit's
error, with its details, in the form."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import require_tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

    from tests.e2e.local.harness import LocalServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    require_tool("chromium")
    require_tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,800",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    # The console's messages: a resource the page asks for and does not get (a favicon), or
    # one the content security policy blocks, shows there.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 800)
    try:
        yield driver
    finally:
        driver.quit()


def _row(driver: WebDriver, task_id: str) -> WebElement:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{task_id}"]')


def _poll(predicate: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the page did not change in time")
        time.sleep(interval)


def test_page_submits_follows_and_cancels_without_reloading(
    server: LocalServer, browser: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    _poll(lambda: browser.find_element(By.ID, "live").text == "live")
    browser.execute_script("window.__sameDocument = true")  # gone if the page ever reloads

    # Submit demo.sleep from the form.
    type_box = browser.find_element(By.ID, "type")
    type_box.clear()
    type_box.send_keys("demo.sleep")
    input_box = browser.find_element(By.ID, "input")
    input_box.clear()
    input_box.send_keys('{"seconds": 3, "steps": 6}')
    browser.find_element(By.ID, "submit").click()
    _poll(lambda: browser.find_element(By.ID, "d-id").text != "")
    task_id = browser.find_element(By.ID, "d-id").text

    def width(task: str) -> float:
        bar = _row(browser, task).find_element(By.CSS_SELECTOR, ".bar > span")
        return float(bar.value_of_css_property("width").removesuffix("px") or 0)

    def status(task: str) -> str:
        return str(_row(browser, task).find_element(By.CSS_SELECTOR, ".status").text)

    # The progress bar advances while RUNNING, then the status turns SUCCESSFUL.
    _poll(lambda: status(task_id) == "RUNNING")
    widths: list[float] = []
    percents: set[str] = set()

    def finished() -> bool:
        widths.append(width(task_id))
        percents.add(_row(browser, task_id).find_element(By.CSS_SELECTOR, ".percent").text)
        return status(task_id) == "SUCCESSFUL"

    _poll(finished, timeout=20)
    assert len({p for p in percents if p not in {"0%", "100%"}}) >= 2, percents
    assert widths == sorted(widths)
    assert widths[-1] > widths[0]
    assert _row(browser, task_id).find_element(By.CSS_SELECTOR, ".percent").text == "100%"
    _poll(lambda: '"steps": 6' in browser.find_element(By.ID, "d-result").text)

    # Cancel another task from its detail panel.
    other = server.submit("demo.sleep", {"seconds": 60, "steps": 60})["id"]
    _poll(lambda: len(browser.find_elements(By.CSS_SELECTOR, f'tr[data-id="{other}"]')) == 1)
    _row(browser, other).click()
    _poll(lambda: browser.find_element(By.ID, "d-id").text == other)
    _poll(lambda: browser.find_element(By.ID, "cancel").is_displayed())
    browser.find_element(By.ID, "cancel").click()
    # Stored FAILED with the code CANCELLED; shown CANCELLED, in a colour of its own, with
    # no red bar, and who cancelled it.
    _poll(lambda: status(other) == "CANCELLED")
    stored = server.get(other)
    assert (stored["status"], stored["error"]["code"]) == ("FAILED", "CANCELLED")
    assert browser.find_element(By.ID, "d-status").text == "CANCELLED"
    badge = _row(browser, other).find_element(By.CSS_SELECTOR, ".status")
    red = "rgba(194, 59, 59, 1)"  # --fail
    assert badge.value_of_css_property("background-color") not in {red, ""}
    assert width(other) == 0
    _poll(lambda: browser.find_element(By.ID, "d-error-title").text == "CANCELLED")
    assert browser.find_element(By.ID, "d-error").text == (
        "Cancelled by the client that submitted it"
    )
    assert browser.find_element(By.ID, "d-error").value_of_css_property("color") != red
    assert not browser.find_element(By.ID, "cancel").is_displayed()

    # A task that fails shows its error; bad JSON is refused on the page.
    input_box.clear()
    input_box.send_keys("{oops")
    browser.find_element(By.ID, "submit").click()
    _poll(lambda: "not JSON" in browser.find_element(By.ID, "form-error").text)

    assert browser.execute_script("return window.__sameDocument") is True
    shot = tmp_path / "taskmanager-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    _assert_quiet_console(browser)


def _assert_quiet_console(browser: WebDriver, *expected: str) -> None:
    """Nothing the page asked for was missing or blocked (a favicon, a policy violation),
    besides the ``expected`` messages (each a part of one), in this order."""
    from selenium.webdriver.chromium.webdriver import ChromiumDriver

    assert isinstance(browser, ChromiumDriver)  # the console's log is Chromium's
    entries: list[dict[str, str]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    severe = [e["message"] for e in entries if e["level"] == "SEVERE"]
    assert len(severe) == len(expected), severe
    for message, part in zip(severe, expected, strict=True):
        assert part in message, severe


def _no_sideways_scroll(browser: WebDriver) -> tuple[int, int]:
    widths = browser.execute_script(
        "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];"
    )
    return int(widths[0]), int(widths[1])


def test_on_a_phone_nothing_scrolls_sideways_and_a_refused_type_shows_in_the_form(
    server: LocalServer, typed_server: LocalServer, browser: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(420, 860)
    # Tasks with long type names and long error messages in the list and the detail.
    long_type = "phone." + "very-long-type-name." * 2 + "x" * 10
    long_error = {"code": "A_RATHER_LONG_ERROR_CODE_" + "X" * 30, "message": "word " * 150}
    server.submit(long_type, {"text": "y" * 500})
    failed = server.submit("demo.fail", long_error)["id"]
    server.wait_for(failed, {"FAILED"})

    browser.get(server.url + "/")
    _poll(lambda: browser.find_element(By.ID, "live").text == "live")
    _poll(lambda: len(browser.find_elements(By.CSS_SELECTOR, f'tr[data-id="{failed}"]')) == 1)
    scroll, client = _no_sideways_scroll(browser)
    assert client <= 420
    assert scroll <= client, (scroll, client)
    _row(browser, failed).click()
    _poll(lambda: "A_RATHER_LONG_ERROR_CODE" in browser.find_element(By.ID, "d-error").text)
    scroll, client = _no_sideways_scroll(browser)
    assert scroll <= client, (scroll, client)
    assert browser.save_screenshot(str(tmp_path / "taskmanager-phone.png"))

    # A type no processor takes: the server's refusal, with the known types, in the form.
    browser.get(typed_server.url + "/")
    _poll(lambda: browser.find_element(By.ID, "live").text == "live")
    type_box = browser.find_element(By.ID, "type")
    type_box.clear()
    type_box.send_keys("demo.slep")
    browser.find_element(By.ID, "submit").click()
    message = browser.find_element(By.ID, "form-error-message")
    _poll(lambda: message.is_displayed() and "UNKNOWN_TASK_TYPE" in message.text)
    assert message.text == (
        "422 UNKNOWN_TASK_TYPE: no processor here takes tasks of this type; "
        "the known types are: demo.echo, demo.fail, demo.sleep"
    )
    details = browser.find_element(By.ID, "form-error-details").text
    assert "field: type" in details
    choices = browser.find_elements(By.CSS_SELECTOR, "#form-error-details button.choice")
    assert [c.text for c in choices] == ["demo.echo", "demo.fail", "demo.sleep"]
    assert type_box.get_attribute("aria-invalid") == "true"
    scroll, client = _no_sideways_scroll(browser)
    assert scroll <= client, (scroll, client)
    # Choosing a known type from the error fills the form; the error goes.
    choices[2].click()
    assert type_box.get_attribute("value") == "demo.sleep"
    assert not browser.find_element(By.ID, "form-error").is_displayed()
    _assert_quiet_console(
        browser, "/tasks - Failed to load resource: the server responded with a status of 422"
    )
