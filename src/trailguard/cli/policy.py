"""Policy tooling: classify a tool call, test a decision, check a policy directory, and replay
stored history under another policy set (what-if, before a rollout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trailguard.cli._common import (
    CommandGroup,
    DataDir,
    app,
    fail,
    open_read_only,
    out,
    resolve_data_dir,
)

policy_app = typer.Typer(
    cls=CommandGroup, help="Cedar policies: test, check, replay.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")

ToolOption = Annotated[str, typer.Option("--tool", help="Claude Code tool name, e.g. Bash")]
InputOption = Annotated[str, typer.Option("--input", help='Tool input as JSON: {"command": "…"}')]
PolicyOption = Annotated[
    Path | None, typer.Option("--policy", help="Policy directory [default: the shipped pack]")
]


def _tool_input(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--input is not JSON: {exc}")


def _load(policy: Path | None) -> Any:
    from trailguard.policy.loader import PolicyError, load_policy_set

    try:
        return load_policy_set(policy)
    except PolicyError as exc:
        fail(str(exc))


@app.command()
def classify(
    tool: ToolOption,
    tool_input: InputOption,
    cwd: Annotated[str | None, typer.Option(help="Working directory of the call.")] = None,
) -> None:
    """Print the operations a tool call performs, as JSON."""
    from trailguard.classify import ClassifyContext, classify_tool_call

    operations = classify_tool_call(tool, _tool_input(tool_input), ClassifyContext(cwd=cwd))
    sys.stdout.write(json.dumps([op.to_json_dict() for op in operations], indent=2) + "\n")


@policy_app.command("test")
def policy_test(
    tool: ToolOption,
    tool_input: InputOption,
    policy: PolicyOption = None,
    developer: Annotated[str, typer.Option(help="developerId to decide for.")] = "dev",
    project: Annotated[str | None, typer.Option(help="projectId to decide for.")] = None,
    cwd: Annotated[str | None, typer.Option(help="Working directory of the call.")] = None,
) -> None:
    """Decide one tool call and print the decision, rule and reason as JSON."""
    from trailguard.classify import ClassifyContext, classify_tool_call
    from trailguard.policy.engine import DecisionRequest, decide

    policy_set = _load(policy)
    arguments = _tool_input(tool_input)
    operations = classify_tool_call(tool, arguments, ClassifyContext(cwd=cwd, project_root=cwd))
    command = arguments.get("command") if isinstance(arguments, dict) else None
    decision = decide(
        policy_set,
        DecisionRequest(
            developer_id=developer,
            tool=tool,
            operations=operations,
            project_id=project,
            command=command if isinstance(command, str) else None,
        ),
    )
    result = {
        "decision": decision.result,
        "rule": decision.rule,
        "reason": decision.reason,
        "policyVersion": decision.version,
        "operations": [op.to_json_dict() for op in operations],
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


@policy_app.command("check")
def policy_check(directory: Path) -> None:
    """Validate a policy directory: exit 0 if it loads, 1 with every problem otherwise."""
    from trailguard.policy.loader import PolicyError, check_policy_directory, load_policy_set

    problems = check_policy_directory(directory)
    for problem in problems:
        out.print(f"[yellow]{problem}[/]")
    try:
        policy_set = load_policy_set(directory)
    except PolicyError:
        raise typer.Exit(1) from None
    out.print(f"ok: {len(policy_set.rules)} rules, version {policy_set.version}")


@policy_app.command("replay")
def policy_replay(
    policy: PolicyOption = None,
    data_dir: DataDir = None,
    session: Annotated[str | None, typer.Option()] = None,
    developer: Annotated[str | None, typer.Option()] = None,
    project: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option()] = None,
    until: Annotated[str | None, typer.Option()] = None,
    date: Annotated[str | None, typer.Option()] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Re-decide stored tool calls under POLICY and list every one whose decision would change.

    The stored operations are decided again, so the answer reflects exactly what was recorded.
    """
    from trailguard.events import Operation
    from trailguard.policy.engine import DecisionRequest, decide
    from trailguard.retrieval import EventQuery, QueryError, query_events

    policy_set = _load(policy)
    try:
        event_query = EventQuery.build(
            session=session,
            developer=developer,
            project=project,
            since=since,
            until=until,
            day=date,
            event_type="tool_invocation",
        )
    except QueryError as exc:
        fail(str(exc))
    store = open_read_only(resolve_data_dir(data_dir))
    changes: list[dict[str, Any]] = []
    examined = 0
    try:
        for event in query_events(store, event_query):
            if event.get("policyResult") is None:
                continue  # imported history: nothing was decided then
            examined += 1
            operations = [Operation.model_validate(op) for op in event.get("operations") or []]
            tool_input = event.get("input")
            command = tool_input.get("command") if isinstance(tool_input, dict) else None
            decision = decide(
                policy_set,
                DecisionRequest(
                    developer_id=event.get("developerId") or "",
                    tool=event.get("tool") or "",
                    operations=operations,
                    project_id=event.get("projectId"),
                    session_id=event.get("sessionId"),
                    command=command if isinstance(command, str) else None,
                ),
            )
            if decision.result != event["policyResult"]:
                changes.append(
                    {
                        "seq": event["seq"],
                        "timestamp": event["timestamp"],
                        "sessionId": event.get("sessionId"),
                        "tool": event.get("tool"),
                        "toolUseId": event.get("toolUseId"),
                        "was": event["policyResult"],
                        "wasRule": event.get("policyRule"),
                        "wouldBe": decision.result,
                        "wouldBeRule": decision.rule,
                        "reason": decision.reason,
                    }
                )
    finally:
        store.close()
    if output_format == "json":
        sys.stdout.write(
            json.dumps(
                {"examined": examined, "policyVersion": policy_set.version, "changes": changes},
                indent=2,
            )
            + "\n"
        )
        return
    for change in changes:
        out.print(
            f"seq {change['seq']} {change['timestamp']} {change['tool']} {change['toolUseId']}: "
            f"{change['was']} ({change['wasRule']}) → {change['wouldBe']} ({change['wouldBeRule']})"
        )
    out.print(
        f"{len(changes)} of {examined} decided tool calls would change under {policy_set.version}"
    )
