#!/usr/bin/env python3
"""make ui-check: `retort ui` in a real browser (Debian's chromium and chromium-driver, driven by selenium).

Starts `retort ui` over a fresh results folder, opens the runs list, starts a halving search of the bundled example in
the background and sees it appear in the list (and later finish) without a reload, opens the live view and records the trial tiles changing state, follows the page to the finished run, opens the
compare page (against a first, quick run) and the history page, checks keyboard navigation, and saves screenshots at
1280x800, in a narrow window and in dark mode under results/ui-check/. Usage: ui_check.py PATH/TO/retort
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

RETORT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/retort")
OUT = os.path.abspath("results/ui-check")
RESULTS = os.path.join(OUT, "results")
HISTORY = os.path.join(OUT, "history.sqlite")
TASK = "examples/shop-support/task"
checks = []


def check(condition, what):
    checks.append((bool(condition), what))
    print(("ok   " if condition else "FAIL ") + what, flush=True)


def shot(driver, name):
    path = os.path.join(OUT, name + ".png")
    driver.save_screenshot(path)
    print("     screenshot " + os.path.relpath(path), flush=True)


def api(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(RESULTS)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if not os.path.exists(os.path.join(TASK, "train.jsonl")):
        subprocess.run([RETORT, "demo", "--out", os.path.join(OUT, "demo"), "--no-history"], check=True, **quiet)
    # A first, quick run (the one the compare page sets against the live one).
    subprocess.run(
        [RETORT, "search", "--task", TASK, "--candidates", "examples/shop-support/candidates.yaml", "--seed", "5",
         "--max-size", "100KB", "--max-drop", "0.005", "--history", HISTORY, "--out", os.path.join(RESULTS, "shop")],
        check=True, **quiet)
    # A gateway config whose ledger holds the first run's student deployed on a route (no gateway needs to run).
    token = "rk-ui-check"
    digest = subprocess.run(["sha256sum"], input=token, capture_output=True, text=True).stdout.split()[0]
    gateway = os.path.join(OUT, "gateway.yaml")
    with open(gateway, "w") as file:
        file.write(
            "listen: 127.0.0.1:0\nledger: var/gateway.sqlite\nkeys:\n"
            f"  - {{sha256: {digest}, user: ana, team: support}}\n"
            "providers:\n  fake: {kind: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
            "routes:\n  support:\n    deployments:\n"
            "      - {provider: fake, model: teacher, price: {input_per_mtok: 15, output_per_mtok: 75}}\n")
    subprocess.run(
        [RETORT, "deploy", os.path.join(RESULTS, "shop", "latest"), "--config", gateway, "--route", "support"],
        check=True, **quiet)
    ui = subprocess.Popen(
        [RETORT, "ui", "--results", RESULTS, "--history", HISTORY, "--gateway-config", gateway, "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    base = re.search(r"http://\S+", ui.stdout.readline()).group(0).rstrip("/")
    print("retort ui at " + base, flush=True)
    search = None
    options = Options()
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.set_window_size(1280, 800)
        driver.get(base + "/")
        check(len(driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 1, "the runs list shows the first run")

        # A search in another process, started after the list was opened: the list picks it up by itself, without a
        # reload (a marker set on the page now would be gone after one), and its page follows it live.
        driver.execute_script("window.uiCheckMarker = 'same page';")
        search = subprocess.Popen(
            [RETORT, "search", "--task", TASK, "--strategy", "halving", "--history", HISTORY, "--workers", "1",
             "--out", os.path.join(RESULTS, "shop")], **quiet)
        deadline = time.time() + 60
        rows = []
        while time.time() < deadline and not rows:
            rows = driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr a[href*='.partial']")
            time.sleep(0.3)
        check(rows, "the search started after the list was opened appears in it")
        check(driver.execute_script("return window.uiCheckMarker") == "same page", "without a reload")
        # Read the newest row in one go (the live list may replace a row between two reads).
        text, key, href = driver.execute_script(
            "var r = document.querySelector('#runs tbody tr');"
            "return [r.innerText, r.dataset.run, r.querySelector('a').getAttribute('href')];")
        check("running" in text and ".partial" not in key and ".partial" in href,
              f"as the newest row, marked running ({text!r})")
        check(any(not run["finished"] for run in api(base + "/api/runs")), "the running search is in /api/runs")
        list_tab = driver.current_window_handle
        # Its live page in a second tab; the list stays open in the first to see the run finish.
        driver.switch_to.new_window("tab")
        driver.get(base + href)
        check(".partial" in driver.current_url, "its live page opens")

        # Watch the tiles: record each candidate's state in rung 1 until the run is over.
        seen = {}
        transitions = 0
        screenshot_taken = False
        deadline = time.time() + 600
        while time.time() < deadline and ".partial" in driver.current_url:
            try:
                tiles = driver.execute_script(
                    "return Array.from(document.querySelectorAll('ul.tiles[data-rung=\"0\"] li.tile'))"
                    ".map(t => [t.dataset.candidate, t.dataset.state]);")
            except Exception:
                tiles = []
            for candidate, state in tiles or []:
                if candidate in seen and seen[candidate] != state:
                    transitions += 1
                seen[candidate] = state
            states = {state for _, state in tiles or []}
            if not screenshot_taken and "running" in states and "done" in states:
                shot(driver, "live-1280")
                driver.set_window_size(420, 860)
                shot(driver, "live-narrow")
                driver.set_window_size(1280, 800)
                screenshot_taken = True
            time.sleep(0.3)
        check(transitions > 0, f"trial tiles changed state live ({transitions} changes over {len(seen)} tiles)")
        check(screenshot_taken, "the live view showed running and done trials at once")
        check(".partial" not in driver.current_url, "the page moved to the finished run by itself")
        run_tab = driver.current_window_handle
        driver.switch_to.window(list_tab)
        deadline = time.time() + 10
        state = ""
        while time.time() < deadline and "finished" not in state:
            state = driver.execute_script(
                "var r = document.querySelector('#runs tr[data-run=\"' + arguments[0] + '\"]');"
                "return r ? r.innerText : '';", key)
            time.sleep(0.3)
        check("finished" in state and driver.execute_script("return window.uiCheckMarker") == "same page",
              f"the list marks the run finished by itself ({state!r})")
        shot(driver, "runs-1280")
        driver.close()
        driver.switch_to.window(run_tab)
        time.sleep(0.5)
        body = driver.find_element(By.TAG_NAME, "main").text
        check("Recommendation" in body, "the finished run shows its recommendation")
        check("Pipeline" in body and "export" in body, "and its pipeline with every stage")
        shot(driver, "run-1280")
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        shot(driver, "run-dark")
        background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        check(background in ("rgb(22, 22, 23)",), f"dark mode colours the page ({background})")
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        # Keyboard: the first Tab reaches the skip link, the next ones the navigation.
        driver.get(base + "/")
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        first = driver.switch_to.active_element.text
        driver.switch_to.active_element.send_keys(Keys.TAB)
        second = driver.switch_to.active_element.text
        check(first == "Skip to content" and second == "Runs", f"keyboard order: {first!r}, {second!r}")

        runs = [run for run in api(base + "/api/runs") if run["finished"]]
        check(len(runs) == 2, "two finished runs")
        driver.get(f"{base}/compare?a={runs[1]['path']}&b={runs[0]['path']}")
        text = driver.find_element(By.TAG_NAME, "main").text
        check("A: " in text and "B: " in text, "the compare page shows both runs")
        shot(driver, "compare-1280")
        driver.get(base + "/spend")
        text = driver.find_element(By.TAG_NAME, "main").text
        check("Deployed students" in text and "student/linear-b12-int8" in text, "the spend page shows the deployment")
        shot(driver, "spend-1280")
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        shot(driver, "spend-dark")
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        driver.get(base + "/history")
        check("shop-support" in driver.find_element(By.TAG_NAME, "main").text, "the history lists the task")
        shot(driver, "history-1280")
        driver.set_window_size(420, 860)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        check(width <= 430, f"the history page fits a narrow window ({width} px wide)")
        shot(driver, "history-narrow")
    finally:
        driver.quit()
        if search and search.poll() is None:
            search.terminate()
        ui.terminate()
    failed = [what for ok, what in checks if not ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed; screenshots in {os.path.relpath(OUT)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    import scriptkit  # expected failures end in one line, not a traceback (scripts/scriptkit.py)
    from selenium.common.exceptions import WebDriverException

    try:
        main()
    except WebDriverException as error:
        said = (error.msg or str(error)).strip().splitlines()
        scriptkit.fail(f"the browser failed: {said[0] if said else type(error).__name__}; "
                       "`make ui-check` installs Debian's chromium and chromium-driver and selenium")
