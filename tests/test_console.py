"""The auditor console against the real app (FastAPI's test client, the real ledger and state):
sign-in and its refusals, cookies, session fixation, CSRF, escaping of agent-controlled text,
every view recorded, filters, kill, tokens, cost and integrity. The browser-driven checks
(script really inert, CSP enforced, no request leaving 127.0.0.1) are in
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlsplit

import markupsafe
import orjson
import pytest
from fastapi.testclient import TestClient

import tamper
from console_fixtures import (
    ALICE_SESSION,
    BOB_SESSION,
    ORPHAN_SESSION,
    XSS_IMG,
    XSS_SCRIPT,
    XSS_SESSION,
    XSS_SVG,
    Seeded,
    seed,
)
from trailguard.console.auth import ConsoleSessions
from trailguard.console.web import CONTENT_SECURITY_POLICY
from trailguard.cost.report import read_cost
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState, Identity
from trailguard.store.sqlite import SQLiteStore

PAGES = (
    "/ui/sessions",
    f"/ui/sessions/{BOB_SESSION}",
    "/ui/denials",
    "/ui/infrastructure",
    "/ui/alerts",
    "/ui/cost",
    "/ui/integrity",
    "/ui/access",
)


@dataclass
class Console:
    client: TestClient
    data_dir: Path
    tokens: dict[str, str]
    seeded: Seeded

    def events(self, event_type: str | None = None) -> list[dict]:
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            found = [orjson.loads(row.body) for row in store.rows()]
        finally:
            store.close()
        return [e for e in found if event_type is None or e["eventType"] == event_type]

    def console_events(self, event_type: str) -> list[dict]:
        return [e for e in self.events(event_type) if e.get("source") == "console"]


def settle(console: Console) -> None:
    """Wait for the reaper's flush of session summaries to the gateway state (every 0.5 s),
    which the sessions list reads like `trailguard sessions list` does."""
    live = console.client.app.state.gateway.sessions
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with live._lock:
            if not live._dirty:
                break
        time.sleep(0.05)
    time.sleep(0.1)  # the flush that emptied the set has written its rows


def login_nonce(client: TestClient) -> str:
    page = client.get("/ui/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def sign_in(client: TestClient, token: str, **headers: str):
    nonce = login_nonce(client)
    return client.post(
        "/ui/login",
        data={"token": token, "csrf": nonce},
        headers=headers,
        follow_redirects=False,
    )


def csrf_of(client: TestClient, path: str = "/ui/sessions") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def set_cookies(response) -> dict[str, SimpleCookie]:
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name in parsed:
            cookies[name] = parsed
    return cookies


def make_console(tmp_path: Path, base_url: str = "http://testserver") -> Iterator[Console]:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=20))
    state = GatewayState(data_dir)
    tokens = {
        name: state.create_token(f"dev_{name}", "agent")[0] for name in ("alice", "bob", "carol")
    }
    tokens["auditor"] = state.create_token("dev_audrey", "auditor")[0]
    tokens["admin"] = state.create_token("dev_adam", "admin")[0]
    state.close()
    with TestClient(create_app(ledger, idle_timeout=3600), base_url=base_url) as client:

        def post(token: str, payload: dict):
            answer = client.post(
                "/hooks/claude-code", json=payload, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200, answer.text
            return answer

        seeded = seed(post, tokens)
        made = Console(client, data_dir, tokens, seeded)
        settle(made)
        yield made


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    yield from make_console(tmp_path)


@pytest.fixture
def auditor(console: Console) -> Console:
    assert sign_in(console.client, console.tokens["auditor"]).status_code == 303
    return console


@pytest.fixture
def admin(console: Console) -> Console:
    assert sign_in(console.client, console.tokens["admin"]).status_code == 303
    return console


# -- sign-in --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "developer"), [("auditor", "dev_audrey"), ("admin", "dev_adam")])
def test_auditor_and_admin_tokens_sign_in_and_the_sign_in_is_recorded(console, who, developer):
    answer = sign_in(console.client, console.tokens[who])
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sessions"
    page = console.client.get("/ui/sessions")
    assert page.status_code == 200
    assert developer in page.text
    (signed,) = [
        e for e in console.console_events("audit_access") if e["action"] == "console sign-in"
    ]
    assert signed["developerId"] == developer
    assert signed["outcome"] == "allowed"


def test_an_agent_token_is_refused_with_a_clear_message_and_the_refusal_recorded(console):
    answer = sign_in(console.client, console.tokens["alice"])
    assert answer.status_code == 403
    assert "Agent tokens cannot sign in" in answer.text
    assert "tg_console=" not in answer.headers.get("set-cookie", "")
    assert console.client.get("/ui/sessions", follow_redirects=False).status_code == 303
    refusals = [e for e in console.console_events("audit_access") if e["outcome"] == "refused"]
    assert refusals
    assert refusals[-1]["developerId"] == "dev_alice"
    assert refusals[-1]["action"] == "POST /ui/login"
    alerts = [e for e in console.console_events("alert") if e["alertType"] == "access_refused"]
    assert alerts
    assert alerts[-1]["developerId"] == "dev_alice"
    assert console.tokens["alice"] not in str(console.events())


def test_an_unknown_token_is_refused_and_recorded_without_the_token(console):
    forged = "tg_" + "A" * 43
    answer = sign_in(console.client, forged)
    assert answer.status_code == 401
    assert "unknown or revoked" in answer.text
    alerts = [
        e for e in console.console_events("alert") if e["alertType"] == "authentication_failed"
    ]
    assert alerts
    assert forged not in str(console.events())


def test_the_session_cookie_is_httponly_samesite_strict_scoped_and_expires(console):
    answer = sign_in(console.client, console.tokens["auditor"])
    header = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("tg_console="))
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in header.lower()
    assert "path=/ui" in header.lower()
    assert "secure" not in attributes  # plain http on 127.0.0.1: a Secure cookie would be lost
    assert 0 < int(re.search(r"Max-Age=(\d+)", header).group(1)) <= 12 * 3600


def test_the_session_cookie_is_secure_over_tls(tmp_path):
    for console in make_console(tmp_path, base_url="https://testserver"):
        answer = sign_in(console.client, console.tokens["auditor"])
        cookies = set_cookies(answer)
        assert cookies["tg_console"]["tg_console"]["secure"]
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        login = console.client.get("/ui/login")
        assert set_cookies(login) == {} or all(
            c[name]["secure"] for name, c in set_cookies(login).items()
        )


def test_a_session_id_planted_before_sign_in_is_never_adopted(console):
    planted = "attacker-chosen-session-id-0123456789abcdef"
    console.client.cookies.set("tg_console", planted, domain="testserver.local", path="/ui")
    assert console.client.get("/ui/sessions", follow_redirects=False).status_code == 303
    answer = sign_in(console.client, console.tokens["auditor"])
    issued = set_cookies(answer)["tg_console"]["tg_console"].value
    assert issued != planted
    assert len(issued) >= 43  # 256 bits
    attacker = TestClient(console.client.app)
    attacker.cookies.set("tg_console", planted)
    assert attacker.get("/ui/sessions", follow_redirects=False).status_code == 303


def test_signing_in_again_replaces_the_previous_session(console):
    first = set_cookies(sign_in(console.client, console.tokens["auditor"]))["tg_console"]
    old = first["tg_console"].value
    sign_in(console.client, console.tokens["admin"])
    stale = TestClient(console.client.app)
    stale.cookies.set("tg_console", old)
    assert stale.get("/ui/sessions", follow_redirects=False).status_code == 303


def test_the_token_never_appears_in_a_url_a_cookie_or_a_page(console):
    token = console.tokens["auditor"]
    answer = sign_in(console.client, token)
    assert token not in answer.headers.get("location", "")
    assert token not in " ".join(answer.headers.get_list("set-cookie"))
    for path in (*PAGES, "/ui/login"):
        page = console.client.get(path)
        assert token not in page.text
        assert token not in str(page.url)
    login = console.client.get("/ui/login")
    assert 'method="post"' in login.text
    assert 'type="password"' in login.text


def test_signing_out_ends_the_session(auditor):
    client = auditor.client
    cookie = client.cookies.get("tg_console")
    answer = client.post("/ui/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert answer.status_code == 303
    again = TestClient(client.app)
    again.cookies.set("tg_console", cookie)
    assert again.get("/ui/sessions", follow_redirects=False).status_code == 303
    assert any(e["action"] == "console sign-out" for e in auditor.console_events("audit_access"))


def test_sign_in_goes_back_only_to_a_console_page(console):
    nonce = login_nonce(console.client)
    for target, expected in [
        ("/ui/denials?rule=x", "/ui/denials?rule=x"),
        ("//evil.example/ui/", "/ui/sessions"),
        ("https://evil.example/", "/ui/sessions"),
        ("/ui/\\evil", "/ui/sessions"),
    ]:
        nonce = login_nonce(console.client)
        answer = console.client.post(
            "/ui/login",
            data={"token": console.tokens["auditor"], "csrf": nonce, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected


def test_a_revoked_token_ends_its_console_session_at_once(auditor):
    state = GatewayState(auditor.data_dir)
    try:
        (record,) = [t for t in state.tokens() if t.developer_id == "dev_audrey"]
        state.revoke_token(record.token_id)
    finally:
        state.close()
    answer = auditor.client.get("/ui/sessions", follow_redirects=False)
    assert answer.status_code == 303
    assert "why=revoked" in answer.headers["location"]
    assert "revoked" in auditor.client.get(answer.headers["location"]).text


def test_an_idle_or_old_console_session_expires():
    sessions = ConsoleSessions(idle_seconds=0.05, lifetime_seconds=60)
    cookie, _ = sessions.create(Identity("dev_audrey", "auditor", "tok_1"))
    assert sessions.get(cookie) is not None
    time.sleep(0.1)
    assert sessions.get(cookie) is None
    old = ConsoleSessions(idle_seconds=60, lifetime_seconds=0.05)
    cookie, _ = old.create(Identity("dev_audrey", "auditor", "tok_1"))
    time.sleep(0.1)
    assert old.get(cookie) is None


def test_pages_need_a_session_and_send_the_browser_to_sign_in(console):
    for path in (*PAGES, "/ui/admin/tokens", "/ui/export?session=x"):
        answer = console.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=")


# -- CSRF -----------------------------------------------------------------------------------------


def test_state_changing_forms_without_the_csrf_token_are_refused_and_recorded(admin):
    client = admin.client
    forms = [
        ("/ui/kill", {"session": BOB_SESSION, "reason": "csrf", "confirm": "yes"}),
        ("/ui/admin/tokens", {"developer": "dev_evil", "role": "admin"}),
        ("/ui/integrity/verify", {}),
        ("/ui/logout", {}),
    ]
    for path, form in forms:
        for csrf in (None, "wrong-token"):
            data = form | ({"csrf": csrf} if csrf else {})
            answer = client.post(path, data=data, follow_redirects=False)
            assert answer.status_code == 403, (path, answer.text)
            assert "CSRF" in answer.text
    state = GatewayState(admin.data_dir)
    try:
        assert state.pending_kills() == []
        assert not [t for t in state.tokens() if t.developer_id == "dev_evil"]
    finally:
        state.close()
    alerts = [e for e in admin.console_events("alert") if e["alertType"] == "console_csrf_refused"]
    assert len(alerts) == 8
    assert client.get("/ui/sessions").status_code == 200  # still signed in


def test_a_cross_site_post_is_refused_even_with_the_right_csrf_token(admin):
    client = admin.client
    csrf = csrf_of(client)
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        answer = client.post(
            "/ui/kill",
            data={"session": BOB_SESSION, "reason": "r", "confirm": "yes", "csrf": csrf},
            headers=headers,
            follow_redirects=False,
        )
        assert answer.status_code == 403, headers
    same = client.post(
        "/ui/kill",
        data={"session": BOB_SESSION, "reason": "checked", "confirm": "yes", "csrf": csrf},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert same.status_code == 303


def test_a_sign_in_form_without_its_nonce_is_refused(console):
    login_nonce(console.client)
    answer = console.client.post(
        "/ui/login", data={"token": console.tokens["auditor"], "csrf": "forged"}
    )
    assert answer.status_code == 403
    answer = TestClient(console.client.app).post(
        "/ui/login", data={"token": console.tokens["auditor"], "csrf": "x"}
    )
    assert answer.status_code == 403
    assert console.client.get("/ui/sessions", follow_redirects=False).status_code == 303


# -- what agents wrote stays text ------------------------------------------------------------------


def test_agent_markup_in_inputs_outputs_prompts_and_session_ids_is_escaped(auditor):
    client = auditor.client
    pages = [
        "/ui/sessions",
        f"/ui/sessions/{BOB_SESSION}",
        "/ui/sessions/" + quote(XSS_SESSION, safe=""),
        "/ui/denials?decision=ask",
        "/ui/infrastructure",
        "/ui/access",
    ]
    bob = client.get(f"/ui/sessions/{BOB_SESSION}").text
    for payload in (XSS_SCRIPT, XSS_IMG, XSS_SVG):
        assert str(markupsafe.escape(payload)) in bob
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        for payload in (XSS_SCRIPT, XSS_IMG, XSS_SVG, XSS_SESSION):
            assert payload not in page.text, (path, payload)
        assert_no_active_markup(page.text, path)
    carol = client.get("/ui/sessions/" + quote(XSS_SESSION, safe=""))
    assert "&lt;script&gt;document.title=" in carol.text


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def assert_no_active_markup(page: str, where: str) -> None:
    """Parse the page as a browser would: the only scripts are the console's own files, no
    element has an event handler, and no element the agents wrote (img, svg onload) exists."""
    parser = _Elements()
    parser.feed(page)
    for tag, attrs in parser.found:
        names = {name for name, _ in attrs}
        assert not any(name.startswith("on") for name in names), (where, tag, attrs)
        if tag == "script":
            assert dict(attrs).get("src", "").startswith("/ui/static/"), (where, attrs)
        assert tag != "img", (where, attrs)
        if tag == "svg":
            assert dict(attrs).get("class") == "chart", (where, attrs)


def test_bidi_overrides_and_control_characters_are_shown_escaped(auditor, console):
    client = auditor.client
    sneaky = "echo safe \u202e/ fr- mr"
    answer = client.post(
        "/hooks/claude-code",
        json={
            "session_id": BOB_SESSION,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": sneaky},
            "tool_use_id": "toolu_bidi",
        },
        headers={"Authorization": f"Bearer {console.tokens['bob']}"},
    )
    assert answer.status_code == 200
    page = client.get(f"/ui/sessions/{BOB_SESSION}").text
    assert "\u202e" not in page
    assert "echo safe \\u202e/ fr- mr" in page


def test_session_ids_that_are_path_segments_or_markup_are_reachable(auditor, console):
    odd = ["..", "a/b?c#d", XSS_SESSION]
    for session in odd[:2]:
        answer = auditor.client.post(
            "/hooks/claude-code",
            json={"session_id": session, "hook_event_name": "SessionStart", "source": "startup"},
            headers={"Authorization": f"Bearer {console.tokens['carol']}"},
        )
        assert answer.status_code == 200
    settle(auditor)
    listing = auditor.client.get("/ui/sessions").text
    for session in odd:
        links = re.findall(
            r'<a href="([^"]+)"><code class="id">' + re.escape(str(markupsafe.escape(session))),
            listing,
        )
        assert links, session
        page = auditor.client.get(html.unescape(links[0]))
        assert page.status_code == 200, (session, links[0])
        assert str(markupsafe.escape(session)) in page.text


# -- headers and assets ---------------------------------------------------------------------------


def test_every_console_page_has_a_strict_content_security_policy(admin):
    policy = CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    for path in (*PAGES, "/ui/admin/tokens", "/ui/login"):
        answer = admin.client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "same-origin"


def test_templates_hold_no_inline_script_style_or_event_handler():
    folder = resources.files("trailguard.console") / "templates"
    for template in folder.iterdir():
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "javascript:" not in text, template.name


def test_console_pages_and_the_api_docs_load_nothing_from_another_host(admin):
    for path in (*PAGES, "/ui/admin/tokens", "/ui/login", "/docs"):
        page = admin.client.get(path).text
        for url in re.findall(r'(?:src|href)="([^"]+)"', page):
            assert not urlsplit(url).netloc, (path, url)
        for url in re.findall(r'(?:src|href)="(/[^"]+)"', page):
            if url.startswith(("/ui/static/", "/docs/assets/")):
                answer = admin.client.get(url)
                assert answer.status_code == 200, url
    css = admin.client.get(
        re.search(r'href="(/ui/static/console.css[^"]*)"', page_of(admin)).group(1)
    )
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "@import" not in css.text
    assert "url(http" not in css.text


def page_of(console: Console) -> str:
    return console.client.get("/ui/sessions").text


def test_unknown_static_files_are_not_found(admin):
    for name in ("../app.py", "routes.py", "console.css.bak", "%2e%2e/web.py"):
        assert admin.client.get(f"/ui/static/{name}").status_code == 404, name


# -- every view recorded --------------------------------------------------------------------------


def test_every_page_view_is_recorded_as_audit_access_with_the_viewer_and_what_was_shown(
    auditor,
):
    before = len(auditor.console_events("audit_access"))
    auditor.client.get("/ui/sessions?developer=dev_bob&has=denials")
    auditor.client.get(f"/ui/sessions/{ALICE_SESSION}")
    auditor.client.get("/ui/denials?rule=no-force-push-to-main")
    auditor.client.get("/ui/cost?developer=dev_alice")
    auditor.client.get(f"/ui/export?session={ALICE_SESSION}")
    for path in ("/ui/infrastructure", "/ui/alerts", "/ui/integrity", "/ui/access"):
        auditor.client.get(path)
    recorded = auditor.console_events("audit_access")[before:]
    assert [e["action"] for e in recorded] == [
        "GET /ui/sessions",
        "GET /ui/sessions/{id}",
        "GET /ui/denials",
        "GET /ui/cost",
        "GET /ui/export",
        "GET /ui/infrastructure",
        "GET /ui/alerts",
        "GET /ui/integrity",
        "GET /ui/access",
    ]
    assert all(e["developerId"] == "dev_audrey" and e["outcome"] == "allowed" for e in recorded)
    sessions, session, denials, cost, export = recorded[:5]
    assert sessions["query"]["developer"] == "dev_bob"
    assert sessions["query"]["has"] == ["denials"]
    assert sessions["resultCount"] == 1
    assert session["query"]["session"] == ALICE_SESSION
    assert session["resultCount"] == len(
        [e for e in auditor.events() if e.get("sessionId") == ALICE_SESSION]
    )
    assert denials["query"]["rule"] == "no-force-push-to-main"
    assert denials["resultCount"] == 1
    assert cost["query"]["developer"] == "dev_alice"
    assert export["query"].pop("tokenId").startswith("tok_")
    assert export["query"] == {"session": ALICE_SESSION, "format": "jsonl"}


def test_live_updates_are_recorded_only_when_they_show_something(auditor, console):
    client = auditor.client
    page = client.get("/ui/sessions?state=active").text
    fingerprint = re.search(r'data-live-fingerprint="([^"]+)"', page).group(1)
    before = len(auditor.console_events("audit_access"))
    unchanged = client.get(f"/ui/live/sessions?state=active&fp={fingerprint}")
    assert unchanged.status_code == 204
    assert len(auditor.console_events("audit_access")) == before
    client.post(
        "/hooks/claude-code",
        json={"session_id": BOB_SESSION, "hook_event_name": "UserPromptSubmit", "prompt": "more"},
        headers={"Authorization": f"Bearer {console.tokens['bob']}"},
    )
    settle(auditor)
    changed = client.get(f"/ui/live/sessions?state=active&fp={fingerprint}")
    assert changed.status_code == 200
    assert changed.headers["x-live-fingerprint"] != fingerprint
    assert BOB_SESSION in changed.text
    (live,) = auditor.console_events("audit_access")[before:]
    assert live["action"] == "GET /ui/sessions (live update)"
    timeline = client.get(f"/ui/live/session?id={BOB_SESSION}&fp=stale")
    assert timeline.status_code == 200
    assert "toolu_bob_gap" in timeline.text
    again = client.get(
        f"/ui/live/session?id={BOB_SESSION}&fp={timeline.headers['x-live-fingerprint']}"
    )
    assert again.status_code == 204


# -- the pages show the record --------------------------------------------------------------------


def session_ids_listed(page: str) -> list[str]:
    return [
        html.unescape(s) for s in re.findall(r'<code class="id">([^<]+)</code></a> <button', page)
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {ALICE_SESSION, BOB_SESSION, XSS_SESSION, ORPHAN_SESSION}),
        ("developer=dev_bob", {BOB_SESSION}),
        ("project=github.com/acme/backend", {ALICE_SESSION}),
        ("state=active", {BOB_SESSION, ORPHAN_SESSION}),
        ("state=ended", {ALICE_SESSION, XSS_SESSION}),
        ("state=completed", {ALICE_SESSION, XSS_SESSION}),
        ("state=killed", set()),
        ("state=never_started", {ORPHAN_SESSION}),
        ("has=denials", {ALICE_SESSION, BOB_SESSION}),
        ("has=gaps", {BOB_SESSION, XSS_SESSION}),
        ("has=alerts", {ORPHAN_SESSION}),
        ("has=denials&has=gaps", {BOB_SESSION}),
        ("since=2999-01-01", set()),
        ("until=2000-01-01", set()),
    ],
)
def test_sessions_filter_by_developer_project_state_and_what_they_have(auditor, query, expected):
    page = auditor.client.get(f"/ui/sessions?{query}")
    assert page.status_code == 200
    assert set(session_ids_listed(page.text)) == expected


def test_sessions_are_sorted_and_paged(auditor):
    client = auditor.client
    newest = session_ids_listed(client.get("/ui/sessions?sort=started&order=desc").text)
    oldest = session_ids_listed(client.get("/ui/sessions?sort=started&order=asc").text)
    assert newest == oldest[::-1]
    by_developer = session_ids_listed(client.get("/ui/sessions?sort=developer&order=asc").text)
    assert by_developer[0] == ALICE_SESSION
    from trailguard.console import views

    state = GatewayState(auditor.data_dir)
    store = SQLiteStore.in_data_dir(auditor.data_dir, read_only=True)
    try:
        filters = views.SessionFilters.parse({"order": "asc"})
        first = views.list_sessions(state, store, filters, per_page=3)
        second = views.list_sessions(
            state, store, views.SessionFilters.parse({"order": "asc", "page": "2"}), per_page=3
        )
    finally:
        store.close()
        state.close()
    assert first.has_next
    assert not second.has_next
    assert [r.summary.session_id for r in first.rows + second.rows] == oldest


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/ui/sessions?state=asleep", "state"),
        ("/ui/sessions?since=yesterday", "since"),
        ("/ui/sessions?page=0", "page"),
        ("/ui/sessions?has=secrets", "has"),
        ("/ui/denials?risk=extreme", "risk"),
        ("/ui/alerts?severity=dire", "severity"),
        ("/ui/cost?until=soon", "until"),
        ("/ui/sessions/" + "x" * 300, "session id"),
    ],
)
def test_a_filter_that_cannot_be_used_is_a_4xx_page_naming_it(auditor, path, named):
    answer = auditor.client.get(path)
    assert answer.status_code == 400
    assert named in answer.text
    assert answer.headers["content-type"].startswith("text/html")


def test_a_session_page_shows_the_denial_with_its_rule_the_operation_with_its_risk_and_cost(
    auditor,
):
    page = auditor.client.get(f"/ui/sessions/{ALICE_SESSION}")
    assert page.status_code == 200
    text = page.text
    assert "no-force-push-to-main" in text
    assert "force-pushing" in text  # the rule's reason
    assert "s3:PutObject" in text
    assert "arn:aws:s3:::prod-config/app/config.json" in text
    assert 'class="badge risk-critical"' in text
    assert "github.com/acme/backend" in text
    assert "(agent said other)" in text
    assert '<svg class="chart"' in text
    store = SQLiteStore.in_data_dir(auditor.data_dir, read_only=True)
    try:
        cost = read_cost(store, session=ALICE_SESSION)
    finally:
        store.close()
    per_call = {e["toolUseId"]: e["usd"] for e in cost["perToolCall"]}
    s3_entry = text[text.index(f'<code class="muted">{auditor.seeded.infra_tool_use}'[:60]) - 400 :]
    assert f"${per_call[auditor.seeded.infra_tool_use]:.2f}" in s3_entry
    bob = auditor.client.get(f"/ui/sessions/{BOB_SESSION}").text
    assert 'class="subagent-group"' in bob
    assert "agent_reviewer" in bob
    assert "gap: no result, error or denial" in bob
    assert "no-aws-destructive-in-prod" in bob


def test_unknown_sessions_are_not_found(auditor):
    answer = auditor.client.get("/ui/sessions/no-such-session")
    assert answer.status_code == 404
    assert "no events for session" in answer.text


def test_cross_session_views_filter_by_rule_action_and_risk(auditor):
    client = auditor.client
    denials = client.get("/ui/denials").text
    assert "no-force-push-to-main" in denials
    assert "no-aws-destructive-in-prod" in denials
    only_push = client.get("/ui/denials?rule=no-force-push-to-main").text
    assert "no-aws-destructive-in-prod" not in only_push
    s3 = client.get("/ui/denials?action=s3:").text
    assert "no-aws-destructive-in-prod" in s3
    assert "git push -f" not in s3
    asked = client.get("/ui/denials?decision=ask").text
    assert "terraform destroy" in asked or "No denial matches" in asked
    infra = client.get("/ui/infrastructure?action=s3:PutObject").text
    assert "arn:aws:s3:::prod-config/app/config.json" in infra
    assert 'class="badge allowed"' in infra  # the decision of the call that asked for it
    critical = client.get("/ui/infrastructure?risk=critical").text
    rows = critical[critical.index("<tbody>") :]
    assert "s3:DeleteObject" in rows
    assert "s3:PutObject" not in rows
    alerts = client.get("/ui/alerts").text
    assert "session_not_started" in alerts
    assert "session_not_started" not in client.get("/ui/alerts?severity=critical").text


def test_the_cost_page_shows_what_trailguard_cost_reports(auditor):
    store = SQLiteStore.in_data_dir(auditor.data_dir, read_only=True)
    try:
        report = read_cost(store)
    finally:
        store.close()
    page = auditor.client.get("/ui/cost").text
    assert report["totalUsd"] > 0
    assert f"<strong>${report['totalUsd']:,.2f}</strong> over {report['requests']}" in page
    for developer in report["perDeveloper"]:
        assert developer in page
    assert page.count('<rect class="bar"') >= len(report["perDay"]) + len(report["perDeveloper"])
    only_bob = auditor.client.get("/ui/cost?developer=dev_bob").text
    assert "dev_alice" not in only_bob


def test_the_access_log_lists_console_and_cli_reads(auditor):
    auditor.client.get("/ui/denials")
    page = auditor.client.get("/ui/access").text
    assert "GET /ui/denials" in page
    assert "console sign-in" in page


# -- admin: kill and tokens -----------------------------------------------------------------------


def test_an_auditor_cannot_kill_or_manage_tokens_and_the_refusal_is_recorded(auditor):
    client = auditor.client
    csrf = csrf_of(client)
    assert client.get("/ui/admin/tokens").status_code == 403
    assert client.get(f"/ui/kill?session={BOB_SESSION}").status_code == 403
    answer = client.post(
        "/ui/kill",
        data={"session": BOB_SESSION, "reason": "no", "confirm": "yes", "csrf": csrf},
    )
    assert answer.status_code == 403
    assert "admin token" in answer.text
    refused = [e for e in auditor.console_events("audit_access") if e["outcome"] == "refused"]
    assert {e["action"] for e in refused} >= {"GET /ui/admin/tokens", "POST /ui/kill"}
    assert all(e["developerId"] == "dev_audrey" for e in refused)
    state = GatewayState(auditor.data_dir)
    try:
        assert state.pending_kills() == []
    finally:
        state.close()
    assert "Kill session" not in client.get(f"/ui/sessions/{BOB_SESSION}").text


def test_an_admin_kill_is_recorded_with_who_and_why_and_stops_the_session(admin, console):
    client = admin.client
    page = client.get(f"/ui/sessions/{BOB_SESSION}").text
    assert "Kill session" in page
    form = client.get(f"/ui/kill?session={BOB_SESSION}")
    assert form.status_code == 200
    assert "cannot be undone" in form.text
    csrf = csrf_of(client, f"/ui/kill?session={BOB_SESSION}")
    refused = client.post("/ui/kill", data={"session": BOB_SESSION, "csrf": csrf, "confirm": "yes"})
    assert refused.status_code == 400
    assert "reason" in refused.text
    answer = client.post(
        "/ui/kill",
        data={
            "session": BOB_SESSION,
            "reason": "leaking <secrets>",
            "confirm": "yes",
            "csrf": csrf,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ends = [e for e in admin.events("session_end") if e["sessionId"] == BOB_SESSION]
        if ends:
            break
        time.sleep(0.05)
    (end,) = ends
    assert end["reason"] == "killed"
    assert end["rawReason"] == "leaking <secrets>"
    assert end["extra"]["requestedBy"].startswith("dev_adam (console, tok_")
    hook = client.post(
        "/hooks/claude-code",
        json={
            "session_id": BOB_SESSION,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "echo after"},
            "tool_use_id": "toolu_after_kill",
        },
        headers={"Authorization": f"Bearer {console.tokens['bob']}"},
    )
    assert hook.json()["continue"] is False
    shown = client.get(answer.headers["location"]).text
    assert "killed" in shown
    assert "leaking &lt;secrets&gt;" in shown


def test_an_admin_creates_and_revokes_tokens_and_both_are_recorded(admin):
    client = admin.client
    csrf = csrf_of(client, "/ui/admin/tokens")
    made = client.post(
        "/ui/admin/tokens",
        data={"developer": "dev_new", "role": "auditor", "projects": "a, b", "csrf": csrf},
    )
    assert made.status_code == 200
    token = re.search(r'id="new-token">([^<]+)<', made.text).group(1)
    assert token.startswith("tg_")
    assert made.headers["cache-control"] == "no-store"
    (created,) = [e for e in admin.events("token_change") if e["subjectDeveloperId"] == "dev_new"]
    assert created["action"] == "created"
    assert created["projects"] == ["a", "b"]
    assert created["changedBy"].startswith("dev_adam (console")
    assert token not in str(admin.events())
    other = TestClient(client.app)
    assert sign_in(other, token).status_code == 303
    assert other.get("/ui/sessions").status_code == 200
    bad = client.post(
        "/ui/admin/tokens", data={"developer": "has space", "role": "agent", "csrf": csrf}
    )
    assert bad.status_code == 400
    assert "developer id" in bad.text
    revoked = client.post(
        "/ui/admin/tokens/revoke",
        data={"token_id": created["tokenId"], "csrf": csrf},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert [
        e["action"] for e in admin.events("token_change") if e["tokenId"] == created["tokenId"]
    ] == [
        "created",
        "revoked",
    ]
    assert other.get("/ui/sessions", follow_redirects=False).status_code == 303


# -- integrity ------------------------------------------------------------------------------------


def wait_for_verify(client: TestClient) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = client.get("/ui/integrity").text
        if "is running" not in page:
            return page
        time.sleep(0.1)
    raise AssertionError("verify did not finish")


def test_the_integrity_page_shows_the_checkpoint_and_key_and_a_verify_run(auditor):
    client = auditor.client
    page = client.get("/ui/integrity").text
    assert "Key fingerprint" in page
    assert "Download checkpoint" in page
    download = client.get("/ui/integrity/checkpoint")
    assert download.status_code == 200
    assert download.text.startswith("trailguard.local/")
    assert "attachment" in download.headers["content-disposition"]
    answer = client.post(
        "/ui/integrity/verify", data={"csrf": csrf_of(client)}, follow_redirects=False
    )
    assert answer.status_code == 303
    page = wait_for_verify(client)
    assert "INTACT" in page
    assert "NOT INTACT" not in page
    (run,) = [e for e in auditor.console_events("audit_access") if e["action"] == "console verify"]
    assert run["query"]["result"] == "intact"
    assert run["developerId"] == "dev_audrey"
    with_checkpoint = client.post(
        "/ui/integrity/verify",
        data={"csrf": csrf_of(client), "trusted_checkpoint": download.text},
        follow_redirects=False,
    )
    assert with_checkpoint.status_code == 303
    assert "against the checkpoint given" in wait_for_verify(client)


def test_verify_from_the_console_finds_an_edited_event_and_raises_a_critical_alert(auditor):
    client = auditor.client
    store = SQLiteStore.in_data_dir(auditor.data_dir, read_only=True)
    try:
        seq = next(row.seq for row in store.rows() if row.event_type == "tool_invocation")
    finally:
        store.close()
    tamper.edit_event(auditor.data_dir, seq, lambda d: d.update(input={"command": "true"}))
    client.post("/ui/integrity/verify", data={"csrf": csrf_of(client)})
    page = wait_for_verify(client)
    assert "NOT INTACT" in page
    assert f"seq {seq}" in page
    alerts = [e for e in auditor.console_events("alert") if e["alertType"] == "verify_failed"]
    assert alerts
    assert alerts[0]["severity"] == "critical"


def test_a_trusted_checkpoint_that_is_not_one_is_refused_naming_it(auditor):
    client = auditor.client
    answer = client.post(
        "/ui/integrity/verify",
        data={"csrf": csrf_of(client), "trusted_checkpoint": "not a checkpoint"},
    )
    assert answer.status_code == 400
    assert "trusted checkpoint" in answer.text


def test_the_session_index_says_what_sessions_show_says_and_follows_new_events(console):
    from trailguard.console.views import SessionIndex
    from trailguard.retrieval import session_report

    store = SQLiteStore.in_data_dir(console.data_dir, read_only=True)
    try:
        index = SessionIndex()
        index.refresh(store)
        for session in console.seeded.sessions.values():
            assert index.report(session) == session_report(store, session)
        before = index.report(BOB_SESSION)
        console.client.post(
            "/hooks/claude-code",
            json={
                "session_id": BOB_SESSION,
                "hook_event_name": "PostToolUse",
                "tool_name": "Bash",
                "tool_input": {},
                "tool_response": {"stdout": "late", "stderr": ""},
                "tool_use_id": console.seeded.gap_tool_use,
            },
            headers={"Authorization": f"Bearer {console.tokens['bob']}"},
        )
        index.refresh(store)
        after = index.report(BOB_SESSION)
        assert after == session_report(store, BOB_SESSION)
        assert len(after.gaps) == len(before.gaps) - 1
        assert after.counts["tool_result"] == before.counts["tool_result"] + 1
    finally:
        store.close()


def test_a_long_timeline_is_paged_and_the_picture_links_into_every_page(auditor):
    from trailguard.console import views

    state = GatewayState(auditor.data_dir)
    store = SQLiteStore.in_data_dir(auditor.data_dir, read_only=True)
    try:
        first = views.session_view(store, state, BOB_SESSION, page=1, per_page=3)
        last = views.session_view(store, state, BOB_SESSION, page=first.pages, per_page=3)
        with pytest.raises(views.QueryError, match="page"):
            views.session_view(store, state, BOB_SESSION, page=first.pages + 1, per_page=3)
    finally:
        store.close()
        state.close()
    assert first.pages >= 3
    assert len(first.items) == 3
    assert first.items[0] is not last.items[0]
    hrefs = {mark.href for mark in first.chart.marks}
    assert any(h.startswith("#ev-") for h in hrefs)
    assert any(h.startswith(f"?page={first.pages}#ev-") for h in hrefs)
    answer = auditor.client.get(f"/ui/sessions/{BOB_SESSION}?page=999")
    assert answer.status_code == 400
    assert "page" in answer.text


def test_the_incident_report_and_evidence_bundle_download_from_the_session_page(auditor):
    import io
    import zipfile

    client = auditor.client
    page = client.get(f"/ui/sessions/{ALICE_SESSION}").text
    links = {
        html.unescape(href) for href in re.findall(r'href="(/ui/(?:report|evidence)\?[^"]+)"', page)
    }
    assert len(links) == 3
    report = client.get(next(link for link in links if "format=html" in link))
    assert report.status_code == 200
    assert report.headers["content-disposition"].startswith("attachment;")
    assert ALICE_SESSION in report.text
    assert "no-force-push-to-main" in report.text
    markdown = client.get(next(link for link in links if "format=md" in link))
    assert markdown.headers["content-type"].startswith("text/markdown")
    bundle = client.get(next(link for link in links if "/ui/evidence" in link))
    assert bundle.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    recorded = {e["action"]: e for e in auditor.console_events("audit_access")}
    assert recorded["GET /ui/report"]["query"]["session"] == ALICE_SESSION
    assert recorded["GET /ui/report"]["resultCount"] > 0
    assert (
        recorded["GET /ui/evidence"]["query"]["manifestSha256"]
        == bundle.headers["x-trailguard-manifest-sha256"]
    )
    assert client.get("/ui/evidence?session=no-such").status_code == 404
    assert client.get(f"/ui/report?session={ALICE_SESSION}&format=pdf").status_code == 400
