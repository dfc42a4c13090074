"""The web page in a real browser: ``ferbench serve`` on loopback, headless Chromium uploads a face photo.

Needs Debian ``chromium`` + ``chromium-driver`` and ``selenium`` (dev extra); ``.ci/run`` installs them.
Locally without them the test is skipped with the reason; in CI (``CI=true``) their absence fails it.
The screenshot goes to ``out/browser/page.png`` (git-ignored), the CI artefact.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = REPO / "out" / "browser"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1200,900")


def _need(what: str) -> None:
    msg = f"browser test needs {what} (Debian: apt-get install chromium chromium-driver; pip install selenium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " — CI must provide it (.ci/run installs it)")
    pytest.skip(msg)


def _tools() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None:
        _need("the chromium browser")
    if driver is None:
        _need("chromedriver (Debian package chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _need("the selenium Python package")
    return str(browser), str(driver)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post_predict(url: str, name: str, body: bytes) -> dict:
    boundary = "ferbenchboundary"
    data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/predict", data=data,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_page_shows_the_label_post_predict_returns() -> None:
    browser, driver_path = _tools()
    skd = pytest.importorskip("skimage.data")
    import cv2
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    work = Path(tempfile.mkdtemp(prefix="ferbench-browser-"))
    photo = work / "astronaut.jpg"  # a real face photo (scikit-image's astronaut, 512×512)
    cv2.imwrite(str(photo), cv2.cvtColor(skd.astronaut(), cv2.COLOR_RGB2BGR))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen([sys.executable, "-m", "ferbench.cli.main", "serve", "--model", "default",
                               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work)
    driver = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                server.terminate()  # a server still starting after the deadline would block the stderr read
                err = server.communicate(timeout=20)[1].decode() if server.stderr else ""
                pytest.fail(f"ferbench serve did not come up: {err[-800:]}")
            time.sleep(0.2)
        expected = _post_predict(url, photo.name, photo.read_bytes())
        assert expected["faces"], "the astronaut photo must contain a detected face"

        opts = webdriver.ChromeOptions()
        for a in (*CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}"):
            opts.add_argument(a)
        opts.binary_location = browser
        os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not look anything up online
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
        driver.get(url + "/")
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .face"))
        cards = driver.find_elements(By.CSS_SELECTOR, "#results .face")
        shown = [c.find_element(By.CSS_SELECTOR, ".label").text for c in cards]
        heads = [c.find_element(By.TAG_NAME, "h2").text for c in cards]
        nums = [c.get_attribute("data-face") for c in cards]
        boxes = json.loads(driver.find_element(By.ID, "canvas").get_attribute("data-boxes") or "[]")
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTEFACTS / "page.png"))
        status = driver.find_element(By.ID, "status").text
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(20)
    want = [f["label"] for f in expected["faces"]]
    assert shown == want, (shown, want, status)
    # boxes numbered like the cards: box n ↔ card "Face n"
    assert [b["n"] for b in boxes] == list(range(1, len(want) + 1)) and [b["label"] for b in boxes] == want
    assert heads == [f"Face {i + 1}: {lab}" for i, lab in enumerate(want)] and nums == [str(b["n"]) for b in boxes]
    assert [b["box"] for b in boxes] == [f["box"] for f in expected["faces"]]
    assert (ARTEFACTS / "page.png").stat().st_size > 10_000 and f"{len(want)} face(s)" in status


def test_missing_chromium_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the chromium browser"):
        _tools()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must provide it"):
        _tools()
