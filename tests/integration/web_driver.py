"""A WebDriver client in plain HTTP (no selenium) for the ha-web browser tests: Debian's chromedriver
drives Debian's headless chromium; nothing is downloaded."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.web_env import free_port

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element key


class WebDriverError(AssertionError):
    pass


def available() -> bool:
    return bool(shutil.which("chromedriver") and (shutil.which("chromium") or Path("/usr/lib/chromium/chromium").exists()))


class Browser:
    def __init__(self, log_dir: Path, width: int = 1280, height: int = 900):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="hd-chromium-")
        self.log = open(log_dir / "chromedriver.log", "w")
        self.proc = subprocess.Popen(["chromedriver", f"--port={self.port}", "--allowed-ips=127.0.0.1"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                self._http("GET", "/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise WebDriverError("chromedriver did not start") from None
                time.sleep(0.2)
        binary = shutil.which("chromium") and "/usr/lib/chromium/chromium"
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}"]
        opts = {"args": args}
        if binary and Path(binary).exists():
            opts["binary"] = binary
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "acceptInsecureCerts": True,
                                                 "goog:chromeOptions": opts, "goog:loggingPrefs": {"browser": "ALL"}}}}
        try:
            self.session = self._http("POST", "/session", caps, timeout=120)["sessionId"]
        except Exception:
            self.close()
            raise

    def _http(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                value = json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise WebDriverError(f"{method} {path}: {exc.code} {detail[:500]}") from None
        if isinstance(value, dict) and "sessionId" in value and path == "/session":
            return value
        return value

    def cmd(self, method, path, body=None, timeout=60):
        return self._http(method, f"/session/{self.session}{path}", body, timeout)

    # -- commands --------------------------------------------------------------------------------------
    def get(self, url):
        self.cmd("POST", "/url", {"url": url}, timeout=120)

    def js(self, script, *args, async_=False):
        """Run script in the page; with async_, it ends by calling its last argument with the result."""
        return self.cmd("POST", "/execute/async" if async_ else "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        el = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return el[ELEMENT]

    def exists(self, css) -> bool:
        return bool(self.js("return document.querySelector(arguments[0]) !== null", css))

    def type(self, css, text):
        el = self.find(css)
        self.cmd("POST", f"/element/{el}/clear", {})
        self.cmd("POST", f"/element/{el}/value", {"text": text})

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css) -> str:
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", css)

    def select(self, css, value):
        self.js("const e = document.querySelector(arguments[0]); e.value = arguments[1];"
                "e.dispatchEvent(new Event('change', {bubbles: true}))", css, value)

    def url(self) -> str:
        return self.cmd("GET", "/url")

    def resize(self, width, height):
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path):
        import base64
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def wait(self, cond, timeout=60, what="the page"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = cond()
            except WebDriverError as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(0.2)
        raise WebDriverError(f"timed out waiting for {what} (last: {last!r}) at {self.describe()}")

    def describe(self) -> str:
        """Where the browser is and what the console said (for a failure's message)."""
        try:
            url = self.url()
            page = self.js("const p = document.querySelector('main'); return p ? p.innerText.slice(0, 800) : ''")
            logs = self.cmd("POST", "/se/log", {"type": "browser"})
            return f"{url}: {page!r}; console: {[x.get('message') for x in logs or []][-10:]}"
        except Exception as exc:  # noqa: BLE001 - a description only
            return f"(no description: {exc})"

    def close(self):
        try:
            if getattr(self, "session", None):
                self._http("DELETE", f"/session/{self.session}", timeout=30)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
