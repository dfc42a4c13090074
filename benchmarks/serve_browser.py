"""Browser test of the web page: start ``ferbench serve`` on 127.0.0.1, open ``/`` in headless Chromium,
upload a face image and find the predicted label on the page.

    .venv/bin/python benchmarks/serve_browser.py --model RUN_DIR

Needs Debian ``chromium`` + ``chromium-driver`` and ``pip install selenium``. Exit code 0 = the
label shown by the page equals the one ``POST /predict`` returns for the same image.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the page after the upload")
    args = ap.parse_args()

    import httpx
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_load import free_port, jpeg_frame

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ferbench.cli.main", "serve", "--model", args.model,
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    driver = None
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = jpeg_frame()
        expected = httpx.post(f"{url}/predict", files={"file": ("face.jpg", body, "image/jpeg")}).json()
        img = Path(tempfile.mkdtemp()) / "face.jpg"
        img.write_bytes(body)
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            opts.add_argument(a)
        if Path("/usr/bin/chromium").exists():
            opts.binary_location = "/usr/bin/chromium"
        service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver") \
            if Path("/usr/bin/chromedriver").exists() else None
        driver = webdriver.Chrome(options=opts, service=service)
        driver.get(url + "/")
        driver.find_element(By.ID, "file").send_keys(str(img))
        wait = WebDriverWait(driver, 30)
        if expected["faces"]:
            label = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#results .label")).text
            want = expected["faces"][0]["label"]
        else:
            label = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#results .noface")).text
            want = "No face found."
        if args.screenshot:
            driver.save_screenshot(str(args.screenshot))
        print(f"page shows {label!r}; POST /predict says {want!r}; status: "
              f"{driver.find_element(By.ID, 'status').text!r}")
        sys.exit(0 if label == want else 1)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
