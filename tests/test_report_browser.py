"""report.html in a real browser: headless Chromium opens a run's report, logs no console error,
and draws every plot (each image decoded with a width, each element and the page not blank).

Needs the Debian packages chromium and chromium-driver (.ci/run installs them). Without them the
test is skipped with the reason, except under CI=true, where it fails: CI must run it."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from twin.report.html import write_report
from twin.report.writers import write_outputs
from twin.scenario.schema import load_scenario
from twin.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = "/usr/bin/chromedriver"


def _unavailable() -> str | None:
    """Why the browser cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "Chromium is not installed (Debian: apt-get install chromium chromium-driver; .ci/run does it)"
    if not (os.path.exists(CHROMEDRIVER) or shutil.which("chromedriver")):
        return "chromedriver is not installed (Debian: apt-get install chromium-driver; .ci/run does it)"
    return None


@pytest.fixture(scope="module")
def driver():
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1000"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    path = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver")
    browser = webdriver.Chrome(service=Service(path), options=options)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory, model_cache) -> Path:
    """A traffic run with campaigns: every kind of run plot (accuracy, energy, traffic, campaigns, wear)."""
    scenario = load_scenario(ROOT / "scenarios/traffic.yaml", [
        "duration=2 d", "checkpoints.count=3", "evaluation.accuracy_samples=1", "evaluation.test_images=200",
        "network.sa_iterations=200", "network.sa_restarts=1", "traffic.windows.steady=4",
        "traffic.windows.length=10 ms"])
    folder = write_outputs(simulate(scenario), scenario, tmp_path_factory.mktemp("browser") / "run")
    return write_report(folder)


DECODED_PIXELS = """
const img = arguments[0];
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth;
canvas.height = img.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(img, 0, 0);
const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
let transparent = 0;
const seen = new Set();
for (let i = 0; i < data.length; i += 4) {
  if (data[i + 3] === 0) transparent++;
  if (seen.size < 64) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
}
return [transparent, seen.size];
"""
"""The test's own script (the report has none): an image's transparent pixels and distinct colours."""


def colours(png: bytes) -> int:
    """Distinct colours of a PNG screenshot."""
    from matplotlib.image import imread
    pixels = imread(io.BytesIO(png), format="png")
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


def test_report_renders_in_chromium(driver, report):
    from selenium.webdriver.common.by import By
    driver.get(report.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    images = driver.find_elements(By.TAG_NAME, "img")
    plots = sorted(p.stem for p in (report.parent / "plots").glob("*.png"))
    assert plots == ["accuracy", "campaigns", "energy", "traffic", "wear"] and len(images) == len(plots)
    for image in images:
        alt = image.get_attribute("alt")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0, alt
        # decoded to the last row: a plot is opaque everywhere (a cut-off PNG leaves transparent rows)
        transparent, distinct = driver.execute_script(DECODED_PIXELS, image)
        assert transparent == 0 and distinct > 1, (alt, transparent, distinct)
        assert colours(image.screenshot_as_png) > 1, alt
    for svg in driver.find_elements(By.TAG_NAME, "svg"):  # inline SVG, if a report ever has one
        box = driver.execute_script("const b = arguments[0].getBoundingClientRect(); return [b.width, b.height]", svg)
        assert box[0] > 0 and box[1] > 0
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert colours(driver.get_screenshot_as_png()) > 1
    assert "fell below" in driver.find_element(By.ID, "verdict").text or \
        "kept accuracy" in driver.find_element(By.ID, "verdict").text or \
        "no better and no worse" in driver.find_element(By.ID, "verdict").text
