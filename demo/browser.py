"""Drive the demo in a real browser: start `app.py` as a server, open it in headless Chromium, upload a photo and
read back what the page shows. Shared by the browser test (`tests/demo/`) and `screenshot.py`.

Chromium and its driver come from the system's packages (Debian: `chromium`, `chromium-driver`); Selenium
talks to that driver directly (`Service(executable_path=...)`, https://www.selenium.dev/documentation/webdriver/
drivers/service/), so nothing is downloaded.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from modeling_au_mlt.atomic_io import atomic_output

APP = Path(__file__).resolve().with_name("app.py")
INSTALL_COMMAND = "apt-get install -y chromium chromium-driver"
# Headless, and nothing that reaches the network on its own (updates, sync, QUIC probes); --no-sandbox because
# CI runs as root, where Chromium's sandbox cannot start.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LABEL_ENTRIES = "#au-label [data-testid$='-confidence-set']"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(model: str | Path, timeout: float = 120.0) -> Iterator[str]:
    """The demo serving `model` on a free local port, as a subprocess; yields its URL, stops it after.
    `RuntimeError` with the server's stderr if it exits or does not answer within `timeout` seconds."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a full pipe would block the server
        command = [sys.executable, str(APP), "--model", str(model), "--port", str(port), "--host", "127.0.0.1"]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment, text=True)
        try:
            wait_until_serving(server, url, timeout, stderr)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def wait_until_serving(server: subprocess.Popen, url: str, timeout: float, stderr) -> None:
    """Return once `url` answers; `RuntimeError` with the server's stderr if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    stderr.seek(0)
    state = f"exited with {server.returncode}" if server.poll() is not None else f"did not answer in {timeout:.0f} s"
    raise RuntimeError(f"the demo ({' '.join(map(str, server.args))}) {state}; its stderr:\n{stderr.read()}")


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[WebDriver]:
    """Headless system Chromium driven by the system chromedriver, with a fresh profile; `RuntimeError`
    naming the install command if either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        missing = " and ".join(
            name for name, path in (("chromium", browser), ("chromedriver", driver_path)) if not path
        )
        raise RuntimeError(f"{missing} not found on PATH: install the system's packages ({INSTALL_COMMAND})")
    with tempfile.TemporaryDirectory(prefix="au_mlt_chromium_") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def open_app(driver: WebDriver, url: str, timeout: float = 30.0) -> None:
    """Load the demo and wait until its photo upload is on the page."""
    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda page: page.find_elements(By.CSS_SELECTOR, "input[type=file]"))


def upload_photo(driver: WebDriver, photo: str | Path) -> None:
    """Give `photo` to the Photo tab's upload (the first file input, which accepts images)."""
    driver.find_element(By.CSS_SELECTOR, "input[type=file][accept^='image']").send_keys(str(Path(photo).resolve()))


def click_example(driver: WebDriver, index: int) -> None:
    """Click the Photo tab's example number `index` (in the order `photo.example_images` lists them)."""
    driver.find_elements(By.CSS_SELECTOR, "#examples tbody tr")[index].click()


def shown_probabilities(driver: WebDriver, labels: int, timeout: float = 60.0) -> dict[str, float]:
    """`{AU: probability}` as the AU probability label shows them (percentages / 100), once it shows `labels`."""
    WebDriverWait(driver, timeout).until(
        lambda page: len(page.find_elements(By.CSS_SELECTOR, LABEL_ENTRIES)) == labels
    )
    shown = {}
    for entry in driver.find_elements(By.CSS_SELECTOR, LABEL_ENTRIES):
        name = entry.find_element(By.CSS_SELECTOR, "dt").text
        shown[name] = float(entry.find_element(By.CSS_SELECTOR, "dd").text.rstrip("%")) / 100
    return shown


def wait_for_message(driver: WebDriver, text: str, timeout: float = 60.0) -> str:
    """The message area's text once it contains `text`."""
    WebDriverWait(driver, timeout).until(lambda page: text in page.find_element(By.ID, "message").text)
    return driver.find_element(By.ID, "message").text


def full_page_screenshot(driver: WebDriver, path: str | Path, timeout: float = 30.0) -> Path:
    """A PNG of the whole page at `path`. The window first grows to the page's height, so that lazily loaded
    images load, then Chromium's DevTools capture the page beyond the window
    (https://chromedevtools.github.io/devtools-protocol/tot/Page/#method-captureScreenshot)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], height)
    loaded = "return [...document.images].every(image => image.complete && image.naturalWidth > 0)"
    WebDriverWait(driver, timeout).until(lambda browser: browser.execute_script(loaded))
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    region = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    options = {"format": "png", "captureBeyondViewport": True, "clip": region}
    with atomic_output(path) as temporary:
        temporary.write_bytes(base64.b64decode(driver.execute_cdp_cmd("Page.captureScreenshot", options)["data"]))
    return Path(path)
