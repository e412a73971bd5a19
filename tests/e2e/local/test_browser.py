"""The web page in a real browser: headless Chromium (Debian's) driven by Selenium.

Submits demo.sleep from the page, watches its progress bar advance and its status turn
SUCCESSFUL without reloading, cancels another task, and writes a screenshot."""

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
    _poll(lambda: status(other) == "FAILED")
    _poll(lambda: "CANCELLED" in browser.find_element(By.ID, "d-error").text)
    assert server.get(other)["error"]["code"] == "CANCELLED"
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
