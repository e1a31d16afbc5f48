"""The auditor console in a real browser: Debian's Chromium driven by Playwright, against a real
`trailguard serve` process (and, for the timeline and the kill, the real Claude Code CLI).

What only a browser can show is checked here: agent-written script really does not run (the
page title the payloads try to change stays, no dialog, no CSP violation), cookies are what
the browser keeps, a cross-site form really is refused, live updates arrive, the keyboard
reaches everything, and no request leaves 127.0.0.1 (every request is intercepted and any other
host aborted and reported). Set TRAILGUARD_CONSOLE_SCREENSHOTS=docs/console to keep the
screenshots the tests take.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from console_fixtures import (
    BOB_SESSION,
    XSS_IMG,
    XSS_SCRIPT,
    XSS_SESSION,
    Seeded,
    seed,
)

from .claude import run_claude
from .conftest import GatewayProcess, Workspace, install_hooks
from .model_server import ModelServer, ToolCall, Turn

pytestmark = [pytest.mark.slow]
CHROMIUM = Path(os.environ.get("TRAILGUARD_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS_ENV = "TRAILGUARD_CONSOLE_SCREENSHOTS"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (never `playwright install`). Missing under CI is a
    failure, not a skip."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            pytest.fail(f"playwright is required in CI: {exc}")
        pytest.skip(f"playwright is not installed ({exc})")
    if not CHROMIUM.is_file():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@dataclass
class Browsing:
    """A browser context on the console whose every request is checked: anything not for
    ``allowed_hosts`` is aborted and listed in ``foreign``."""

    page: Any
    context: Any
    base: str
    allowed_hosts: set[str]
    shots: Path
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_messages: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        answer = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return answer

    def sign_in(self, token: str) -> None:
        self.goto("/ui/login")
        self.page.fill("#token", token)
        with self.page.expect_navigation():
            self.page.keyboard.press("Enter")
        self.page.wait_for_load_state("networkidle")

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        keep = os.environ.get(SCREENSHOTS_ENV)
        if keep:
            target = (REPO_ROOT / keep) if not Path(keep).is_absolute() else Path(keep)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
        return path


@pytest.fixture
def browsing(browser: Any, gateway: GatewayProcess, tmp_path: Path) -> Iterator[Browsing]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    shots = tmp_path / "screenshots"
    shots.mkdir()
    session = Browsing(
        context.new_page(),
        context,
        gateway.url,
        {urlsplit(gateway.url).netloc},
        shots,
    )

    def check(route: Any) -> None:
        url = route.request.url
        session.requests.append(url)
        if urlsplit(url).netloc in session.allowed_hosts:
            route.continue_()
        else:
            session.foreign.append(url)
            route.abort()

    context.route("**/*", check)
    session.page.on("console", lambda m: session.console_messages.append(f"{m.type}: {m.text}"))
    session.page.on("pageerror", lambda e: session.console_messages.append(f"pageerror: {e}"))

    def on_dialog(dialog: Any) -> None:
        session.dialogs.append(dialog.message)
        dialog.dismiss()

    session.page.on("dialog", on_dialog)
    yield session
    context.close()
    assert session.foreign == [], f"requests left 127.0.0.1: {session.foreign}"


@dataclass
class Record:
    tokens: dict[str, str]
    seeded: Seeded


def token(gateway: GatewayProcess, developer: str, role: str) -> str:
    made = gateway.cli("token", "create", "--developer", developer, "--role", role)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture
def record(gateway: GatewayProcess) -> Record:
    tokens = {name: token(gateway, f"dev_{name}", "agent") for name in ("alice", "bob", "carol")}
    tokens["auditor"] = token(gateway, "dev_audrey", "auditor")
    tokens["admin"] = token(gateway, "dev_adam", "admin")

    def post(used: str, payload: dict) -> httpx.Response:
        answer = httpx.post(
            f"{gateway.url}/hooks/claude-code",
            json=payload,
            headers={"Authorization": f"Bearer {used}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer

    seeded = seed(post, tokens)
    time.sleep(1.0)  # the reaper flushes session summaries every 0.5 s
    return Record(tokens, seeded)


def access_events(gateway: GatewayProcess) -> list[dict]:
    return [
        e
        for e in gateway.events()
        if e["eventType"] == "audit_access" and e.get("source") == "console"
    ]


# -- sign-in --------------------------------------------------------------------------------------


def test_sign_in_with_auditor_admin_and_agent_tokens_in_a_real_browser(
    browsing: Browsing, record: Record, gateway: GatewayProcess
):
    page = browsing.page
    browsing.sign_in(record.tokens["alice"])
    assert "/ui/login" in page.url
    assert "Agent tokens cannot sign in" in page.inner_text("#login-message")
    browsing.screenshot("login-refused")
    assert browsing.context.cookies() == [] or all(
        c["name"] != "tg_console" for c in browsing.context.cookies()
    )

    browsing.sign_in(record.tokens["auditor"])
    assert page.url.endswith("/ui/sessions")
    assert "dev_audrey" in page.inner_text("header")
    assert page.locator("nav >> text=Tokens").count() == 0
    (cookie,) = [c for c in browsing.context.cookies() if c["name"] == "tg_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert cookie["secure"] is False  # plain http on 127.0.0.1
    assert cookie["expires"] > time.time()
    assert page.evaluate("document.cookie") == ""  # script cannot read it
    assert record.tokens["auditor"] not in page.content()
    assert all(record.tokens["auditor"] not in url for url in browsing.requests)

    page.click("text=Sign out")
    page.wait_for_url("**/ui/login")
    browsing.sign_in(record.tokens["admin"])
    assert page.locator("nav >> text=Tokens").count() == 1
    refusals = [
        e
        for e in access_events(gateway)
        if e["outcome"] == "refused" and e["action"] == "POST /ui/login"
    ]
    assert [e["developerId"] for e in refusals] == ["dev_alice"]


def test_the_console_is_usable_from_the_keyboard(browsing: Browsing, record: Record):
    page = browsing.page
    browsing.goto("/ui/login")
    page.keyboard.type(record.tokens["auditor"])  # the token field has focus
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/ui/sessions")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.focus("input[name=developer]")
    page.keyboard.type("dev_bob")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rows = page.locator("tbody tr")
    assert rows.count() == 1
    assert BOB_SESSION in rows.first.inner_text()
    link = page.locator(f"a:has-text('{BOB_SESSION}')").first
    link.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/ui/sessions/" + BOB_SESSION in page.url
    summary = page.locator("details > summary").first
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("details[open]").count() >= 1


# -- what agents wrote stays text ------------------------------------------------------------------


def test_agent_markup_stays_inert_in_the_browser(
    browsing: Browsing, record: Record, gateway: GatewayProcess
):
    page = browsing.page
    browsing.sign_in(record.tokens["admin"])
    paths = [
        "/ui/sessions",
        f"/ui/sessions/{BOB_SESSION}",
        "/ui/sessions/" + quote(XSS_SESSION, safe=""),
        "/ui/denials?decision=ask",
        "/ui/infrastructure",
        "/ui/alerts",
        "/ui/access",
        "/ui/cost",
    ]
    for path in paths:
        browsing.goto(path)
        title = page.title()
        assert title.endswith("· trailguard console"), (path, title)  # not set by a payload
        assert page.evaluate("document.querySelectorAll('main img, main script').length") == 0
        assert page.evaluate(
            "[...document.querySelectorAll('main svg')].every(s => s.classList.contains('chart'))"
        )
    browsing.goto(f"/ui/sessions/{BOB_SESSION}")
    shown = page.inner_text("main")
    assert XSS_SCRIPT in shown  # as text, exactly as the agent wrote it
    page.click("text=output >> nth=0")
    assert XSS_IMG in page.inner_text("main") or XSS_IMG.replace('"', '\\"') in page.inner_text(
        "main"
    )
    browsing.goto("/ui/sessions/" + quote(XSS_SESSION, safe=""))
    assert XSS_SESSION in page.inner_text("h1")
    assert page.title() == f"Session {XSS_SESSION} · trailguard console"
    assert browsing.dialogs == []
    violations = [m for m in browsing.console_messages if "Content Security Policy" in m]
    assert violations == [], violations  # nothing even tried to run: it was all text
    assert not [m for m in browsing.console_messages if m.startswith(("error", "pageerror"))]


def test_the_content_security_policy_blocks_script_injected_past_the_templates(
    browsing: Browsing, record: Record
):
    """Defence in depth: even markup that got into a page past the escaping (here, put there
    by the test itself) cannot run inline script or load script from elsewhere."""
    page = browsing.page
    browsing.sign_in(record.tokens["auditor"])
    page.evaluate(
        """() => {
          const holder = document.createElement('div');
          holder.innerHTML = '<img src=x onerror="document.title=\\'pwned-inline\\'">';
          document.body.appendChild(holder);
          const s = document.createElement('script');
          s.textContent = "document.title='pwned-inline-script'";
          document.body.appendChild(s);
        }"""
    )
    page.wait_for_timeout(300)
    assert "pwned" not in page.title()
    assert any("Content Security Policy" in m for m in browsing.console_messages)


# -- CSRF, a real cross-site attack ---------------------------------------------------------------


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    target = ""
    session = ""

    def do_GET(self) -> None:
        body = f"""<!doctype html><html><body>
<form id="f" method="post" action="{self.target}/ui/kill">
<input name="session" value="{self.session}"><input name="reason" value="csrf">
<input name="confirm" value="yes"><input name="csrf" value="guessed"></form>
<script>document.getElementById('f').submit()</script></body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_cross_site_form_cannot_kill_a_session(
    browsing: Browsing, record: Record, gateway: GatewayProcess
):
    browsing.sign_in(record.tokens["admin"])
    handler = type("Attacker", (_AttackerPage,), {"target": gateway.url, "session": BOB_SESSION})
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as attacker:
        threading.Thread(target=attacker.serve_forever, daemon=True).start()
        evil = f"localhost:{attacker.server_address[1]}"  # another site than 127.0.0.1
        browsing.allowed_hosts.add(evil)
        try:
            browsing.page.goto(f"http://{evil}/")
            browsing.page.wait_for_load_state("networkidle")
        finally:
            attacker.shutdown()
    assert "/ui/login" in browsing.page.url or "Refused" in browsing.page.content()
    time.sleep(1.0)
    ends = [e for e in gateway.session_events(BOB_SESSION) if e["eventType"] == "session_end"]
    assert ends == []
    listed = gateway.cli("sessions", "show", BOB_SESSION)
    assert "killed" not in listed.stdout


# -- sessions, live -------------------------------------------------------------------------------


def test_the_sessions_list_filters_and_updates_live(
    browsing: Browsing, record: Record, gateway: GatewayProcess
):
    page = browsing.page
    browsing.sign_in(record.tokens["auditor"])
    browsing.goto("/ui/sessions?has=denials")
    assert page.locator("tbody tr").count() == 2
    browsing.goto("/ui/sessions?state=active")
    before = page.locator("tbody tr").count()
    new_session = "ae1e1885-0000-4000-8000-00000000e005"
    httpx.post(
        f"{gateway.url}/hooks/claude-code",
        json={"session_id": new_session, "hook_event_name": "SessionStart", "source": "startup"},
        headers={"Authorization": f"Bearer {record.tokens['alice']}"},
        timeout=30,
    ).raise_for_status()
    page.wait_for_selector(f"text={new_session}", timeout=20_000)  # no reload
    assert page.locator("tbody tr").count() == before + 1
    assert "updated" in page.inner_text("#sessions-live-status")
    lives = [e for e in access_events(gateway) if e["action"] == "GET /ui/sessions (live update)"]
    assert lives
    assert lives[-1]["developerId"] == "dev_audrey"


def test_screenshots_of_every_page(browsing: Browsing, record: Record):
    browsing.goto("/ui/login")
    browsing.screenshot("login")
    browsing.sign_in(record.tokens["admin"])
    for name, path in [
        ("sessions", "/ui/sessions"),
        ("session-subagent-gap", f"/ui/sessions/{BOB_SESSION}"),
        ("denials", "/ui/denials"),
        ("infrastructure", "/ui/infrastructure"),
        ("alerts", "/ui/alerts"),
        ("cost", "/ui/cost"),
        ("access", "/ui/access"),
        ("tokens", "/ui/admin/tokens"),
        ("docs", "/docs"),
    ]:
        answer = browsing.goto(path)
        assert answer.status == 200, path
        if name == "docs":
            browsing.page.locator(".swagger-ui .opblock").first.wait_for()
        shot = browsing.screenshot(name)
        assert shot.stat().st_size > 10_000
    browsing.goto("/ui/sessions")
    browsing.page.click("nav >> text=Integrity")
    with browsing.page.expect_navigation():
        browsing.page.click("text=Run verify now")
    browsing.page.wait_for_load_state("networkidle")
    for _ in range(100):
        if "is running" not in browsing.page.content():
            break
        browsing.page.wait_for_timeout(200)
        browsing.page.reload()
    assert "INTACT" in browsing.page.inner_text("main")
    browsing.screenshot("integrity")


# -- a real Claude Code session -------------------------------------------------------------------


def bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command, "description": "run a command"})


@pytest.mark.e2e
def test_a_real_sessions_timeline_shows_the_denial_and_the_operation_and_a_console_kill_stops_it(
    claude_binary: Path,
    workspace: Workspace,
    gateway: GatewayProcess,
    browsing: Browsing,
    tmp_path: Path,
):
    install_hooks(workspace, gateway, "http")
    admin = token(gateway, "dev_adam", "admin")
    ready, killed = threading.Event(), threading.Event()
    after_kill = tmp_path / "after-kill"
    upload = bash("aws s3 cp config.json s3://prod-config/app/config.json")
    forbidden = bash("curl -s file:///dev/null | sh")

    def hold() -> None:
        ready.set()
        killed.wait(timeout=120)

    script = [
        Turn(tool_calls=[upload]),
        Turn(tool_calls=[forbidden]),
        Turn(tool_calls=[bash(f"touch {after_kill}")], before=hold),
        Turn(text="should not get here"),
    ]
    outcome: dict[str, Any] = {}

    def run() -> None:
        with ModelServer(script) as model:
            outcome["result"] = run_claude(
                claude_binary,
                home=workspace.home,
                project=workspace.project,
                prompt="deploy the config",
                model_url=model.url,
                env_extra=workspace.env(gateway),
                args=["--permission-mode", "bypassPermissions"],
                timeout=240,
            )

    agent = threading.Thread(target=run)
    agent.start()
    try:
        assert ready.wait(timeout=180), "the agent never reached its third turn"
        session_id = next(
            e["sessionId"] for e in gateway.events() if e["eventType"] == "session_start"
        )
        page = browsing.page
        browsing.sign_in(admin)
        browsing.goto("/ui/sessions/" + quote(session_id, safe=""))
        main = page.inner_text("main")
        assert "denied" in main
        assert "no-download-to-shell" in main
        assert "s3:PutObject" in main
        assert "arn:aws:s3:::prod-config/app/config.json" in main
        assert "active" in main
        browsing.screenshot("session")
        page.click("text=Kill session…")
        page.fill("#reason", "stopped from the console by the e2e test")
        page.check("input[name=confirm]")
        page.click("button:has-text('Kill session')")
        page.wait_for_load_state("networkidle")
        assert "Kill requested" in page.inner_text("main")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ends = [
                e for e in gateway.session_events(session_id) if e["eventType"] == "session_end"
            ]
            if ends:
                break
            time.sleep(0.1)
        assert ends, "the kill was not recorded"
    finally:
        killed.set()
        agent.join(timeout=240)
    assert not after_kill.exists(), "a tool ran after the session was killed from the console"
    events = gateway.session_events(session_id)
    (end,) = [e for e in events if e["eventType"] == "session_end"]
    assert end["reason"] == "killed"
    assert end["rawReason"] == "stopped from the console by the e2e test"
    assert end["extra"]["requestedBy"].startswith("dev_adam (console")
    refused = [
        e for e in events if e["eventType"] == "tool_invocation" and e["policyResult"] == "denied"
    ]
    assert [e["policyRule"] for e in refused] == ["no-download-to-shell", "session-killed"]
    browsing.goto("/ui/sessions/" + quote(session_id, safe=""))
    assert "killed" in page.inner_text("main")
    viewed = [
        e
        for e in access_events(gateway)
        if e["action"] == "GET /ui/sessions/{id}" and e["query"]["session"] == session_id
    ]
    assert len(viewed) >= 2
    assert all(e["developerId"] == "dev_adam" for e in viewed)


def test_the_api_docs_render_in_the_browser_from_local_assets(browsing: Browsing):
    """Swagger UI 4 (swagger-ui-bundle) served locally showed only "Unable to render this
    definition" for FastAPI's OpenAPI 3.1: the page must render the operations."""
    browsing.goto("/docs")
    browsing.page.locator(".swagger-ui .opblock").first.wait_for()
    text = browsing.page.inner_text("body")
    assert "Unable to render" not in text
    assert "/v1/events" in text
    assert "/hooks/claude-code" in text
    assert all(urlsplit(url).netloc in browsing.allowed_hosts for url in browsing.requests)
