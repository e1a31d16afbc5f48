"""The compiled report template is kept between runs in the user's cache directory, never in
one another user could write, and a cached template renders exactly what a fresh one does."""

from __future__ import annotations

import os
import subprocess
import sys

from trailguard.incident import html

RENDER = (
    "import hashlib, marshal; import trailguard.incident.html as h; "
    "t = h._environment().get_template('report.html.j2'); "
    "print(h._environment().bytecode_cache is not None); "
    "print(hashlib.sha256(marshal.dumps(t.root_render_func.__code__)).hexdigest())"
)


def test_the_cache_is_made_private_in_the_user_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = html._bytecode_cache()
    assert cache is not None
    directory = tmp_path / "trailguard" / "templates"
    assert directory.is_dir()
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_cache_directory_others_can_write_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = tmp_path / "trailguard" / "templates"
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    assert html._bytecode_cache() is None


def test_an_unwritable_cache_location_means_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert html._bytecode_cache() is None


def test_a_second_run_loads_the_compiled_template_and_gets_the_same_code(tmp_path):
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}

    def run() -> list[str]:
        done = subprocess.run([sys.executable, "-c", RENDER], env=environment,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.split()

    first = run()
    assert first[0] == "True"
    cached = list((tmp_path / "trailguard" / "templates").iterdir())
    assert len(cached) == 1
    written = cached[0].stat().st_mtime_ns
    second = run()
    assert cached[0].stat().st_mtime_ns == written  # read, not compiled and written again
    assert second == first  # the same compiled render function
