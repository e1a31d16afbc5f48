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
        ("git+https://ghp_FAKEFAKE@github.com/o/r.git", "git+https://github.com/o/r.git"),
        ("git+ssh://git@github.com/o/r.git", "git+ssh://git@github.com/o/r.git"),
    ],
)
def test_credentials_are_removed_and_nothing_else(url: str, expected: str) -> None:
    assert strip_url_credentials(url) == expected


def test_stripping_is_idempotent() -> None:
    once = strip_url_credentials("https://u:p@h/x?access_token=FAKE")
    assert strip_url_credentials(once) == once


def test_every_classifier_strips_urls_with_the_one_stripper() -> None:
    """There is one URL credential stripper: the classifiers' helpers call it."""
    from trailguard.classify import _tool_common, git

    assert git.strip_url_credentials is strip_url_credentials
    assert _tool_common.strip_userinfo("pkg @ git+https://u:hunter2@h/x.git ok") == (
        "pkg @ git+https://h/x.git ok"
    )
    assert _tool_common.strip_userinfo("see https://h/x?token=FAKE now") == (
        "see https://h/x?token= now"
    )
