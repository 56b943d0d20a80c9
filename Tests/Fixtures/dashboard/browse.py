#!/usr/bin/env python3
"""Drives headless Chromium through purser serve's dashboard over the DevTools protocol
(standard library only: a minimal WebSocket client). Used by Tests/PurserAPITests/DashboardTests.swift.

  browse.py --base URL --token TOKEN --out DIR [--swarm ID] [--watch ID] [--screenshot PNG]

It logs in through the form, opens /swarms/ID (if given) and the overview, and writes what
it saw to DIR as JSON and HTML. With --watch ID it writes DIR/loaded, then waits (without
reloading) until the overview's row of swarm ID no longer says `running`, and writes
DIR/final.json. Errors go to stderr, exit 1.
"""
import argparse, base64, json, os, shutil, socket, struct, subprocess, sys, tempfile, time, urllib.request


class WebSocket:
    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake: connection closed")
            answer += chunk
        head, self.buffer = answer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("websocket handshake: " + head.decode(errors="replace"))

    def send(self, text):
        payload = text.encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 8:
                raise RuntimeError("websocket closed by the browser")
            if opcode in (0, 1, 2):
                message += payload
                if first & 0x80:
                    return message.decode()


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="purser-chromium-")
        self.process = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", "--user-data-dir=" + self.profile, "--window-size=1280,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = open(port_file).read().split("\n")[0].strip()
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression, what, seconds=90):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if self.eval(expression):
                    return
            except RuntimeError:
                pass  # a navigation in flight destroys the context: ask again
            time.sleep(0.2)
        raise RuntimeError("timed out waiting for " + what)

    def open(self, url, path):
        self.call("Page.navigate", url=url)
        self.wait(f"location.pathname === {json.dumps(path)} && document.readyState === 'complete'", "page " + path)

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


SUMMARY = """(() => ({
  title: document.title,
  buttons: document.querySelectorAll('button[data-post]').length,
  xss: typeof window.__xss,
  routines: [...document.querySelectorAll('#routines tr[data-routine]')].map(r => ({
    name: r.dataset.routine, state: r.querySelector('.state').textContent, verdict: r.querySelector('.verdict').textContent,
    message: r.querySelector('.message').textContent, stderr: r.querySelector('.stderr').textContent })),
  swarms: [...document.querySelectorAll('#swarms tr[data-swarm]')].map(r => ({
    id: r.dataset.swarm, state: r.querySelector('.state').textContent })),
  budget: [...document.querySelectorAll('#budget tr[data-node]')].map(r => ({
    id: Number(r.dataset.node), cap: r.querySelector('td.cap').textContent, available: r.querySelector('td.available').textContent,
    reserved: r.querySelector('td.reserved').textContent, consumed: r.querySelector('td.consumed').textContent,
    returned: r.querySelector('td.returned').textContent })),
  workers: document.querySelectorAll('#workers tr[data-worker]').length,
  hosts: [...document.querySelectorAll('#hosts tr[data-host]')].map(r => r.dataset.host),
  html: document.documentElement.outerHTML,
}))()"""


def save(out, name, value):
    with open(os.path.join(out, name), "w") as file:
        json.dump(value, file)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--swarm")
    parser.add_argument("--watch")
    parser.add_argument("--screenshot")
    parser.add_argument("--freeze", action="store_true", help="at the end, press the first Freeze button")
    args = parser.parse_args()
    browser = Browser()
    try:
        browser.call("Page.enable")
        browser.call("Runtime.enable")
        # Not logged in: the overview sends the browser to the login form.
        browser.open(args.base + "/", "/login")
        browser.eval(f"document.getElementById('token').value = {json.dumps(args.token)}; "
                     "document.querySelector('form.login').submit(); true")
        browser.wait("location.pathname === '/' && document.readyState === 'complete' && !!document.getElementById('swarms')",
                     "the overview after logging in")
        save(args.out, "login.json", {"cookieVisible": browser.eval("document.cookie")})
        if args.swarm:
            browser.open(f"{args.base}/swarms/{args.swarm}", f"/swarms/{args.swarm}")
            save(args.out, "swarm.json", browser.eval(SUMMARY))
        browser.open(args.base + "/", "/")
        browser.eval("window.__mark = 'kept'; true")
        save(args.out, "overview.json", browser.eval(SUMMARY))
        if args.screenshot:  # while the watched swarm runs: its workers are on the page
            shot = browser.call("Page.captureScreenshot", format="png")
            with open(args.screenshot, "wb") as file:
                file.write(base64.b64decode(shot["data"]))
        if args.watch:
            open(os.path.join(args.out, "loaded"), "w").close()
            row = f"document.querySelector('#swarms tr[data-swarm={json.dumps(args.watch)}] .state')"
            browser.wait(f"{row} && {row}.textContent !== 'running'", "the swarm's row to change", seconds=120)
            final = browser.eval(SUMMARY)
            final["mark"] = browser.eval("window.__mark")
            save(args.out, "final.json", final)
        if args.freeze:
            # The button asks why with window.prompt: answer it as a person would.
            browser.eval("window.prompt = () => 'from the dashboard'; document.querySelector('button.freeze').click(); true")
            browser.wait("!!document.querySelector('button.thaw')", "the Thaw button after freezing")
            save(args.out, "frozen.json", {"mark": browser.eval("window.__mark")})
    finally:
        browser.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # the test shows this text
        print(f"browse.py: {error}", file=sys.stderr)
        sys.exit(1)
