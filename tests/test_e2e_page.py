"""The registration and status page (/server/polar/page) in a real headless
browser: Debian's chromium driven by selenium (scripts/setup-browser.sh),
against the session's real Klippy + Moonraker and the emulator."""
import http.server
import os
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import EMAIL, PIN

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Everything that would make Chromium reach Google's hosts, off; root
# needs --no-sandbox.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--disable-domain-reliability", "--window-size=1000,1400")
# PINs that cannot turn up in a log by chance (ports, times, pids)
PAGE_PIN = "80517342"
WRONG_PIN = "62094815"
PAGE = "/server/polar/page"


@pytest.fixture(scope="module")
def browser(cloud):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail("%s missing: run scripts/setup-browser.sh" % (path,))
    # this module's account PIN; the session's is back afterwards
    cloud.add_account(EMAIL, PAGE_PIN)
    profile = tempfile.mkdtemp(prefix="polar-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS + ("--user-data-dir=" + profile,):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.profile = profile
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        cloud.add_account(EMAIL, PIN)


def open_page(driver, printer):
    driver.get(printer.base_url + PAGE)
    wait_text(driver, "state", lambda t: t != "loading…")


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def wait_text(driver, element_id, pred, timeout=30):
    WebDriverWait(driver, timeout).until(
        lambda d: pred(text(d, element_id)),
        "#%s never matched; page said %r" % (
            element_id, driver.find_element(By.ID, "message").text))
    return text(driver, element_id)


def visible(driver, element_id):
    return driver.find_element(By.ID, element_id).is_displayed()


def submit_registration(driver, pin, email=EMAIL):
    email_input = driver.find_element(By.ID, "email")
    email_input.clear()
    email_input.send_keys(email)
    driver.find_element(By.ID, "pin").send_keys(pin)
    driver.find_element(By.ID, "register-btn").click()


def message_after(driver, kind, timeout=60):
    """The page's message once it has the given class (error/success)."""
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.ID, "message").get_attribute("class")
        == kind, "no %s message" % (kind,))
    return text(driver, "message")


def assert_pin_nowhere(driver, printer, pin):
    """Not in the field, the browser's storage, cookies, URL or history,
    Chromium's profile on disk, klippy.log or moonraker.log."""
    assert driver.find_element(By.ID, "pin").get_attribute("value") == ""
    kept = driver.execute_script("""
        const all = [document.cookie, location.href, document.referrer];
        for (const store of [localStorage, sessionStorage]) {
          for (let i = 0; i < store.length; i++) {
            all.push(store.key(i), store.getItem(store.key(i)));
          }
        }
        return all.join("\\n");""")
    assert pin not in kept
    assert pin not in driver.page_source
    for folder, _, names in os.walk(driver.profile):
        for name in names:
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    assert pin.encode() not in f.read(), name
            except OSError:
                pass    # sockets, locks
    for log in (printer.klippy_log, printer.moonraker_log):
        with open(log, errors="replace") as f:
            assert pin not in f.read(), log


def test_page_is_plain_self_contained_html(printer):
    with urllib.request.urlopen(printer.base_url + PAGE, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        page = r.read().decode()
    assert page.startswith("<!DOCTYPE html>")     # no JSON "result" wrapper
    # nothing fetched from elsewhere; no browser storage in the code at all
    assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""",
                         page)
    for word in ("localStorage", "sessionStorage", "document.cookie",
                 "innerHTML", "outerHTML", "insertAdjacentHTML"):
        assert word not in page


def test_loads_with_unregistered_state(fresh_printer, browser):
    open_page(browser, fresh_printer)
    assert wait_text(browser, "state", lambda t: t == "unregistered")
    assert text(browser, "serial") == "not registered"
    assert visible(browser, "register-form")
    assert not visible(browser, "unregister-btn")
    pin = browser.find_element(By.ID, "pin")
    assert pin.get_attribute("type") == "password"
    assert pin.get_attribute("autocomplete") == "off"
    assert text(browser, "cloud-url") == fresh_printer.cloud_url


def test_wrong_pin_clear_error_nothing_registered(fresh_printer, browser):
    open_page(browser, fresh_printer)
    wait_text(browser, "state", lambda t: t == "unregistered")
    submit_registration(browser, WRONG_PIN)
    msg = message_after(browser, "error")
    assert msg.startswith("Registration failed:")
    assert "email and PIN were not accepted" in msg
    assert not fresh_printer.polar_status()["registered"]
    wait_text(browser, "state", lambda t: t == "unregistered")
    assert visible(browser, "register-form")
    assert_pin_nowhere(browser, fresh_printer, WRONG_PIN)


def test_register_shows_serial_and_online(fresh_printer, browser, cloud):
    open_page(browser, fresh_printer)
    wait_text(browser, "state", lambda t: t == "unregistered")
    submit_registration(browser, PAGE_PIN)
    msg = message_after(browser, "success")
    serial = fresh_printer.polar_status()["serial"]
    assert serial and serial in cloud.printers
    assert serial in msg
    assert wait_text(browser, "serial", lambda t: t == serial)
    wait_text(browser, "state", lambda t: t == "online")
    assert wait_text(browser, "last-status", lambda t: t != "none yet")
    assert visible(browser, "unregister-btn")
    assert not visible(browser, "register-form")
    assert_pin_nowhere(browser, fresh_printer, PAGE_PIN)


def test_unregister_from_page(fresh_printer, browser, cloud):
    status, body = fresh_printer.http(
        "POST", "/server/polar/register", {"email": EMAIL, "pin": PAGE_PIN},
        timeout=120)
    assert status == 200, body
    serial = body["result"]["serial"]
    open_page(browser, fresh_printer)
    wait_text(browser, "state", lambda t: t == "online")
    mark = cloud.mark()
    browser.find_element(By.ID, "unregister-btn").click()
    WebDriverWait(browser, 10).until(lambda d: d.switch_to.alert).accept()
    assert "Unregistered" in message_after(browser, "success")
    cloud.wait_for("unregister", lambda d: d["serialNumber"] == serial,
                   start=mark)
    wait_text(browser, "state", lambda t: t == "unregistered")
    assert text(browser, "serial") == "not registered"
    assert not fresh_printer.polar_status()["registered"]
    assert visible(browser, "register-form")


def test_cloud_text_is_shown_as_text(fresh_printer, browser, cloud):
    # the cloud's refusal reason reaches the page inside the error message
    cloud.register_reason = "<img src=x onerror=window.polarPwned=1>"
    open_page(browser, fresh_printer)
    wait_text(browser, "state", lambda t: t == "unregistered")
    submit_registration(browser, PAGE_PIN)
    # Moonraker cannot put "<" in an HTTP reason: the page says where to look
    assert "shown under Last error" in message_after(browser, "error")
    shown = wait_text(browser, "last-error", lambda t: "<img src=x" in t)
    assert shown == ("registration failed: Polar Cloud refused the "
                     "registration (%s)" % (cloud.register_reason,))
    assert browser.execute_script("return window.polarPwned") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "#last-error *")


def test_camera_preview(fresh_printer, browser, cloud):
    from imagetools import pattern_jpeg
    snap = cloud.serve_file("page_snapshot.jpg",
                            pattern_jpeg(320, 240, noise=False))
    status, body = fresh_printer.http(
        "POST", "/server/webcams/item",
        {"name": "page_cam", "snapshot_url": snap,
         "stream_url": "/webcam/?action=stream"})
    assert status == 200, body
    try:
        fresh_printer.wait_polar(lambda s: s["snapshot_url"] == snap,
                                 what="webcam handed to Klippy")
        open_page(browser, fresh_printer)
        WebDriverWait(browser, 20).until(lambda d: d.execute_script(
            "const i = document.getElementById('snapshot');"
            "return i && i.complete && i.naturalWidth;") == 320)
        src = browser.find_element(By.ID, "snapshot").get_attribute("src")
        assert src.startswith(snap + "?")
    finally:
        fresh_printer.http("DELETE", "/server/webcams/item?name=page_cam")
    fresh_printer.wait_polar(lambda s: not s["snapshot_url"],
                             what="webcam removed")
    wait_text(browser, "camera", lambda t: t == "No camera configured.")



class ServerOnlyProxy(http.server.ThreadingHTTPServer):
    """What Mainsail's and Fluidd's nginx do for the page: forward
    /server/... unchanged to Moonraker; anything else is not Moonraker's."""
    daemon_threads = True

    def __init__(self, upstream):
        self.upstream = upstream
        self.paths = []
        super().__init__(("127.0.0.1", 0), ProxyHandler)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def forward(self):
        self.server.paths.append(self.path)
        if not self.path.startswith("/server/"):
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        req = urllib.request.Request(
            self.server.upstream + self.path, data=body or None,
            method=self.command, headers={
                "Content-Type": self.headers.get("Content-Type", ""),
                "X-Forwarded-For": self.client_address[0]})
        try:
            resp = urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as err:
            resp = err
        with resp:
            data = resp.read()
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.headers["Content-Type"])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


def test_works_behind_a_proxy_of_server_only(fresh_printer, browser):
    proxy = ServerOnlyProxy(fresh_printer.base_url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get("http://127.0.0.1:%d%s" % (proxy.server_port, PAGE))
        assert wait_text(browser, "state", lambda t: t == "unregistered")
        assert visible(browser, "register-form")
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()
    assert proxy.paths and all(p.startswith("/server/polar/")
                               for p in proxy.paths), proxy.paths
