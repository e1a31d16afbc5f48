"""Cedar gets only the context its policies read (policy/context_reads.py): what is read is
found exactly, anything unusual keeps the whole context, and no decision changes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from trailguard.classify import ClassifyContext, classify_tool_call
from trailguard.policy import engine
from trailguard.policy.context_reads import context_reads, cut_context
from trailguard.policy.engine import DecisionRequest, decide
from trailguard.policy.loader import PolicySet, load_policy_set

PACKS = Path(engine.__file__).parent
CORPUS = Path(__file__).parent / "corpus" / "commands.jsonl"


def reads_of(text: str) -> Any:
    return context_reads(json.loads(cedarpy.policies_to_json_str(text)))


def pack(tmp_path: Path, body: str) -> PolicySet:
    directory = tmp_path / "pack"
    directory.mkdir(exist_ok=True)
    (directory / "00-allow.cedar").write_text("permit(principal, action, resource);\n")
    (directory / "10-rules.cedar").write_text(body)
    return load_policy_set(directory)


# --------------------------------------------------------------------------------------------
# What a policy set reads


def test_the_default_pack_reads_the_command_and_five_operation_fields():
    assert load_policy_set().context_reads == {
        "command": None,
        "operation": {
            "access": None,
            "attributes": {"branch": None, "sensitive": None},
            "flags": None,
            "kind": None,
            "resource": None,
        },
    }


def test_attribute_reads_keep_their_value_whole_and_has_tests_keep_presence():
    reads = reads_of(
        'forbid(principal, action, resource) when { context.operation.flags.contains("force") };\n'
        "forbid(principal, action, resource) when {\n"
        "  context has operation && context.operation has attributes &&\n"
        "  context.operation.attributes has branch };\n"
    )
    assert reads == {"operation": {"flags": None, "attributes": {"branch": {}}}}


def test_a_multi_attribute_has_and_a_template_are_read_too():
    reads = reads_of(
        "forbid(principal, action, resource) when { context has operation.attributes.branch };\n"
        'permit(principal == ?principal, action, resource) when { context.project == "p" };\n'
    )
    assert reads == {"operation": {"attributes": {"branch": {}}}, "project": None}


def test_a_value_read_whole_absorbs_reads_below_it():
    reads = reads_of(
        'forbid(principal, action, resource) when { context.operation.attributes.branch == "m" };\n'
        "forbid(principal, action, resource) when { context.operation.attributes == {} };\n"
    )
    assert reads == {"operation": {"attributes": None}}


@pytest.mark.parametrize(
    "condition",
    [
        'context == {"tool": "Bash"}',
        "context has tool && context == context",
        '{"a": context}.a has tool',
        'if true then context.tool == "Bash" else context == {}',
    ],
)
def test_any_other_use_of_the_context_keeps_all_of_it(condition):
    assert reads_of(f"forbid(principal, action, resource) when {{ {condition} }};") is None


def test_the_cut_keeps_only_what_is_read():
    context = {
        "tool": "Bash",
        "session": "s",
        "command": "git push",
        "operation": {
            "kind": "git",
            "flags": ["force"],
            "attributes": {"branch": "main", "x": "y"},
        },
    }
    reads = {"command": None, "operation": {"flags": None, "attributes": {"branch": {}}}}
    assert cut_context(context, reads) == {
        "command": "git push",
        "operation": {"flags": ["force"], "attributes": {"branch": "main"}},
    }
    assert cut_context(context, None) is context
    # Not a record where one is read into: left as it is (Cedar's error is the same).
    assert cut_context({"operation": "text"}, {"operation": {"kind": None}}) == {
        "operation": "text"
    }


# --------------------------------------------------------------------------------------------
# No decision changes


WHEN = "forbid(principal, action, resource) when "
SHAPES = [
    WHEN + '{ context.session like "sess-*" };',
    WHEN + '{ context.project == "prod" && context.tool == "Bash" };',
    '@decision("ask") ' + WHEN + '{ context.operation.risk == "high" };',
    WHEN + '{ context has operations && context.operations.contains("s3:DeleteObject") };',
    WHEN + '{ context.operation.attributes.profile == "prod" };',
    WHEN + "{ context.operation has attributes && context.operation.attributes has profile && "
    'context.operation.access == "write" };',
    'forbid(principal, action, resource) unless { context.command like "git *" || '
    "!(context has operation) };",
    WHEN + '{ context.operation.action like "*Delete*" };',
    WHEN + '{ context == {"tool": "Bash"} };',
]


def corpus_requests() -> list[DecisionRequest]:
    requests = []
    for index, line in enumerate(CORPUS.read_text().splitlines()):
        case = json.loads(line)
        operations = classify_tool_call(
            case["tool"], case["input"], ClassifyContext(cwd="/home/dev/project", home="/home/dev")
        )
        requests.append(
            DecisionRequest(
                developer_id="dev_jordan",
                tool=case["tool"],
                operations=operations,
                project_id=("prod", "staging", None)[index % 3],
                session_id=f"sess-{index}" if index % 2 else f"other-{index}",
                command=case["input"].get("command") or case["input"].get("file_path"),
            )
        )
    return requests


REQUESTS = corpus_requests()


def assert_decisions_unchanged(policy_set: PolicySet) -> dict[str, int]:
    whole = replace(policy_set, context_reads=None)
    seen: dict[str, int] = {}
    for request in REQUESTS:
        cut, full = decide(policy_set, request), decide(whole, request)
        assert cut == full, request
        seen[cut.result] = seen.get(cut.result, 0) + 1
    return seen


@pytest.mark.parametrize("name", ["default", "allowlist"])
def test_the_shipped_packs_decide_the_corpus_as_with_the_whole_context(name):
    seen = assert_decisions_unchanged(load_policy_set(PACKS / name))
    assert len(REQUESTS) >= 500
    assert seen.get("denied", 0) > 0
    assert seen.get("allowed", 0) > 0


@pytest.mark.parametrize("shape", SHAPES)
def test_policies_of_every_shape_decide_the_corpus_as_with_the_whole_context(tmp_path, shape):
    policy_set = pack(tmp_path, shape + "\n")
    seen = assert_decisions_unchanged(policy_set)
    assert len(seen) >= 1


def test_cedar_is_sent_the_cut_context(monkeypatch):
    sent: list[dict[str, Any]] = []
    real = cedarpy.is_authorized_batch

    def spy(requests: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        sent.extend(json.loads(request["context"]) for request in requests)
        return real(requests, *args, **kwargs)

    monkeypatch.setattr(engine.cedarpy, "is_authorized_batch", spy)
    request = next(r for r in REQUESTS if r.operations and r.session_id and r.project_id)
    decide(load_policy_set(), request)
    assert sent
    assert all(set(context) <= {"command", "operation"} for context in sent), sent
    assert any("operation" in context for context in sent)
