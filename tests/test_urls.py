"""The one URL credential stripper (trailguard.urls): capture, classify and the hook client."""

from __future__ import annotations

import pytest

from trailguard.urls import strip_url_credentials


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ghp_FAKEFAKEFAKE@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://user:hunter2@git.example.com/x", "https://git.example.com/x"),
        ("ssh://deploy:hunter2@host/x", "ssh://host/x"),
        ("ssh://git@host/x", "ssh://git@host/x"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("user:hunter2@host:org/repo.git", "host:org/repo.git"),
        ("https://h/x?token=FAKE&page=2", "https://h/x?token=&page=2"),
        (
            "https://h/x?a=1&X-Amz-Signature=ff00&X-Amz-Credential=AKIAFAKE",
            "https://h/x?a=1&X-Amz-Signature=&X-Amz-Credential=",
        ),
        ("https://h/x?monkey=1", "https://h/x?monkey=1"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_credentials_are_removed_and_nothing_else(url: str, expected: str) -> None:
    assert strip_url_credentials(url) == expected


def test_stripping_is_idempotent() -> None:
    once = strip_url_credentials("https://u:p@h/x?access_token=FAKE")
    assert strip_url_credentials(once) == once
