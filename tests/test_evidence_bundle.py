"""`trailguard evidence export | verify`: a bundle that verifies offline with only the public
key, by trailguard and by the standard-library script inside it, and fails naming what was
done to it: a flipped byte, a removed event, reordered events, a swapped checkpoint or proof,
a wrong key, a rewritten log."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tamper
from incident_data import SESSION_A, SESSION_B, record_incident
from trailguard.cli import app
from trailguard.incident import standalone
from trailguard.ledger.note import Signer
from trailguard.store.gateway_state import GatewayState

runner = CliRunner()
Members = dict[str, bytes]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_incident(tmp_path_factory.mktemp("incident") / "ledger").data_dir


@pytest.fixture
def incident(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ledger"
    shutil.copytree(recorded, copy)
    return copy


@pytest.fixture(scope="module")
def exported(recorded: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A bundle of both sessions, and the verifier key (held by the auditor)."""
    copy = tmp_path_factory.mktemp("export") / "ledger"
    shutil.copytree(recorded, copy)
    output = copy.parent / "incident.zip"
    result = runner.invoke(
        app,
        ["evidence", "export", "--data-dir", str(copy), "--session", SESSION_A,
         "--session", SESSION_B, "-o", str(output)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return output.read_bytes(), (copy / "signing.pub").read_text().strip()


def members_of(data: bytes) -> Members:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zipped(members: Members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def refresh_sums(members: Members) -> None:
    """What a careful forger does after an edit: every listed SHA-256 recomputed."""
    manifest = orjson.loads(members["MANIFEST.json"])
    if not isinstance(manifest, dict):
        manifest = {"members": None}  # a forger who broke the manifest keeps it broken
        members["MANIFEST.json"] = b"[]"
    manifest["members"] = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in sorted(members.items())
        if name not in ("MANIFEST.json", "SHA256SUMS")
    }
    if members["MANIFEST.json"] != b"[]":
        members["MANIFEST.json"] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    members["SHA256SUMS"] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        for name, data in sorted(members.items())
        if name != "SHA256SUMS"
    ).encode()


def forged(data: bytes, change: Callable[[Members], None], *, fix_sums: bool = True) -> bytes:
    members = members_of(data)
    change(members)
    if fix_sums:
        refresh_sums(members)
    return zipped(members)


def verify_both(data: bytes, key: str, tmp_path: Path, *args: str) -> tuple[int, str, int, str]:
    """Exit code and output of `trailguard evidence verify` and of the standalone script run
    by an isolated Python that cannot import trailguard or any installed package."""
    path = tmp_path / "bundle.zip"
    path.write_bytes(data)
    ours = runner.invoke(app, ["evidence", "verify", str(path), "--key", key, *args])
    script = tmp_path / "verify_bundle.py"
    script.write_bytes(members_of(data).get("verify_bundle.py") or _script_source())
    theirs = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(path), "--key", key, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    return ours.exit_code, ours.output, theirs.returncode, theirs.stdout + theirs.stderr


def _script_source() -> bytes:
    return Path(standalone.__file__).read_bytes()


def event_files(members: Members) -> list[str]:
    return sorted(name for name in members if name.startswith("events/"))


def test_the_bundle_verifies_offline_after_the_data_directory_is_gone(incident, tmp_path):
    output = tmp_path / "out" / "incident.zip"
    output.parent.mkdir()
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(runner.invoke(app, ["checkpoint", "--data-dir", str(incident)]).stdout)
    key = (incident / "signing.pub").read_text().strip()
    result = runner.invoke(
        app,
        ["evidence", "export", "--data-dir", str(incident), "--session", SESSION_A,
         "--session", SESSION_B, "--from-checkpoint", str(kept), "-o", str(output)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shutil.rmtree(incident)  # nothing of the gateway's host is left
    ours, our_output, theirs, their_output = verify_both(
        output.read_bytes(), key, tmp_path, "--trusted-checkpoint", str(kept)
    )
    assert ours == 0, our_output
    assert "VALID" in our_output
    assert "consistent with your checkpoint of size" in our_output
    assert theirs == 0, their_output
    assert "VALID" in their_output
    members = members_of(output.read_bytes())
    manifest = orjson.loads(members["MANIFEST.json"])
    sessions = {e["sessionId"] for e in manifest["events"] if not e["context"]}
    assert sessions == {SESSION_A, SESSION_B}
    assert {"checkpoints/trusted.txt", "checkpoints/latest.txt", "key/ed25519-public.pem",
            "report.html", "report.md", "report.json", "VERIFY.md",
            "verify_bundle.py"} <= set(members)  # fmt: skip
    # each event file holds the exact stored bytes: canonical JSON, as hashed
    for entry in manifest["events"]:
        body = members[entry["file"]]
        assert orjson.loads(body)["eventId"] == entry["eventId"]


def test_flipping_one_byte_of_an_event_is_named(exported, tmp_path):
    data, key = exported

    def flip(members: Members) -> None:
        name = event_files(members)[5]
        body = bytearray(members[name])
        body[body.index(b'"seq"') - 2] ^= 0x01  # one bit of one byte, before "seq"
        members[name] = bytes(body)

    # as a careless forger (the sums still name it) ...
    ours, output, theirs, script_output = verify_both(forged(data, flip, fix_sums=False),
                                                      key, tmp_path)  # fmt: skip
    name = event_files(members_of(data))[5]
    assert (ours, theirs) == (1, 1)
    assert f"{name}: was changed: its SHA-256 is" in output
    assert f"{name}: was changed" in script_output
    # ... and as a careful one: the proofs still catch it.
    ours, output, theirs, script_output = verify_both(forged(data, flip), key, tmp_path)
    seq = int(name[7:19])
    assert (ours, theirs) == (1, 1)
    assert f"event seq {seq} ({name}): its bytes hash to leaf" in output
    assert "the event was changed" in output
    assert f"event seq {seq} ({name}): hashes to leaf" in script_output


def test_removing_an_event_is_named(exported, tmp_path):
    data, key = exported
    name = event_files(members_of(data))[3]
    seq = int(name[7:19])

    def drop_file(members: Members) -> None:
        del members[name]

    ours, output, theirs, script_output = verify_both(forged(data, drop_file), key, tmp_path)
    assert (ours, theirs) == (1, 1)
    assert f"event seq {seq} ({name}): is missing from the bundle (removed?)" in output
    assert f"event seq {seq} ({name}): is missing" in script_output

    def drop_everywhere_but_the_proofs(members: Members) -> None:
        del members[name]
        manifest = orjson.loads(members["MANIFEST.json"])
        manifest["events"] = [e for e in manifest["events"] if e["seq"] != seq]
        members["MANIFEST.json"] = orjson.dumps(manifest)

    ours, output, theirs, script_output = verify_both(
        forged(data, drop_everywhere_but_the_proofs), key, tmp_path
    )
    assert (ours, theirs) == (1, 1)
    assert f"event seq {seq}: proofs.json proves it but the manifest does not list it" in output
    assert f"report.json seq {seq}: the report shows an event the bundle does not prove" in output
    assert f"report.json seq {seq}: is shown by the report but not proven" in script_output


def test_reordering_events_is_named(exported, tmp_path):
    data, key = exported

    def reorder_manifest(members: Members) -> None:
        manifest = orjson.loads(members["MANIFEST.json"])
        events = manifest["events"]
        events[2], events[3] = events[3], events[2]
        members["MANIFEST.json"] = orjson.dumps(manifest)

    ours, output, theirs, script_output = verify_both(forged(data, reorder_manifest), key,
                                                      tmp_path)  # fmt: skip
    assert (ours, theirs) == (1, 1)
    assert "events are out of ledger order" in output
    assert "out of ledger order" in script_output

    def swap_contents(members: Members) -> None:
        first, second = event_files(members)[2:4]
        members[first], members[second] = members[second], members[first]

    ours, output, theirs, script_output = verify_both(forged(data, swap_contents), key, tmp_path)
    first = event_files(members_of(data))[2]
    assert (ours, theirs) == (1, 1)
    assert f"event seq {int(first[7:19])} ({first}): its bytes hash to leaf" in output
    assert f"event seq {int(first[7:19])} ({first}): is not entry" in script_output


def test_swapping_the_checkpoint_is_named(exported, tmp_path):
    data, key = exported

    def older_checkpoint(members: Members) -> None:
        # another checkpoint of the same log, genuinely signed, but not the one proven against
        members["checkpoints/latest.txt"] = members["checkpoints/covering.txt"]

    ours, output, theirs, script_output = verify_both(forged(data, older_checkpoint), key,
                                                      tmp_path)  # fmt: skip
    assert (ours, theirs) == (1, 1)
    assert "proofs.json: its proofs are for tree size" in output
    assert "(the checkpoint was swapped)" in output
    assert "is for another tree than checkpoints/latest.txt signs (swapped?)" in script_output


def test_swapping_a_proof_is_named(exported, tmp_path):
    data, key = exported

    def swap_paths(members: Members) -> None:
        proofs = orjson.loads(members["proofs.json"])
        a, b = proofs["inclusion"][0], proofs["inclusion"][1]
        a["path"], b["path"] = b["path"], a["path"]
        members["proofs.json"] = orjson.dumps(proofs)

    ours, output, theirs, script_output = verify_both(forged(data, swap_paths), key, tmp_path)
    proofs = orjson.loads(members_of(data)["proofs.json"])
    seq = proofs["inclusion"][0]["seq"]
    assert (ours, theirs) == (1, 1)
    assert f"event seq {seq} (events/{seq:012d}.json): is not entry {seq} of the signed log" in (
        output
    )
    assert f"event seq {seq} (events/{seq:012d}.json): is not entry {seq}" in script_output


def test_a_wrong_key_is_named(exported, tmp_path):
    data, _key = exported
    other = Signer.generate("trailguard.local/impostor").verifier.to_string()
    ours, output, theirs, script_output = verify_both(data, other, tmp_path)
    assert (ours, theirs) == (1, 1)
    assert "key/verifier.txt: the bundle names key" in output
    assert "checkpoints/latest.txt: is not a checkpoint signed by the key you gave" in output
    assert "checkpoints/latest.txt: is not a checkpoint signed by your key" in script_output


def test_a_bundle_re_signed_by_another_key_fails_against_the_pinned_key(exported, tmp_path):
    """The attacker replaces the key in the bundle and re-signs the checkpoints with their own
    key: only the key the auditor holds tells."""
    data, key = exported
    impostor = Signer.generate("trailguard.local/impostor")

    def resign(members: Members) -> None:
        from trailguard.incident.bundle import public_key_pem
        from trailguard.ledger.note import parse, sign

        for name in [n for n in members if n.startswith("checkpoints/")]:
            text = parse(members[name].decode()).text
            members[name] = sign(text, impostor).encode()
        members["key/verifier.txt"] = (impostor.verifier.to_string() + "\n").encode()
        members["key/ed25519-public.pem"] = public_key_pem(impostor.verifier).encode()

    fake = forged(data, resign)
    ours, output, theirs, _script_output = verify_both(fake, impostor.verifier.to_string(),
                                                      tmp_path)  # fmt: skip
    assert (ours, theirs) == (0, 0)  # consistent with itself under the impostor's key...
    ours, output, theirs, _ = verify_both(fake, key, tmp_path)
    assert (ours, theirs) == (1, 1)  # ...and refused under the key the auditor holds
    assert "is not a checkpoint signed by the key you gave" in output


def test_a_kept_checkpoint_catches_a_log_rewritten_with_the_real_key(incident, tmp_path):
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(runner.invoke(app, ["checkpoint", "--data-dir", str(incident)]).stdout)
    key = (incident / "signing.pub").read_text().strip()
    signer = Signer.from_string((incident / "signing.key").read_text())
    target = next(
        json.loads(line)["seq"]
        for line in runner.invoke(
            app, ["query", "--data-dir", str(incident), "--format", "jsonl", "--session",
                  SESSION_A, "--type", "tool_invocation"]
        ).stdout.splitlines()
    )  # fmt: skip
    tamper.edit_event(incident, target, lambda d: d.update(policyResult="allowed"))
    tamper.rehash_everything(incident, resign_with=signer)  # an insider holding the key
    output = tmp_path / "rewritten.zip"
    refused = runner.invoke(
        app,
        ["evidence", "export", "--data-dir", str(incident), "--session", SESSION_A,
         "--from-checkpoint", str(kept), "-o", str(output)],
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "not an extension of that checkpoint (a fork or a rewrite)" in refused.output
    made = runner.invoke(
        app,
        ["evidence", "export", "--data-dir", str(incident), "--session", SESSION_A,
         "-o", str(output)],
    )  # fmt: skip
    assert made.exit_code == 0, made.output  # without the kept checkpoint it looks fine...
    ours, our_output, theirs, their_output = verify_both(
        output.read_bytes(), key, tmp_path, "--trusted-checkpoint", str(kept)
    )
    assert (ours, theirs) == (1, 1)  # ...but the auditor's kept checkpoint refuses it
    assert "trusted checkpoint:" in our_output
    assert "trusted checkpoint:" in their_output


def test_export_refuses_events_that_do_not_verify(incident, tmp_path):
    target = 10
    tamper.edit_event(incident, target, lambda d: d.update(extra={"forged": True}))
    result = runner.invoke(
        app,
        ["evidence", "export", "--data-dir", str(incident), "--session", SESSION_A,
         "--session", SESSION_B, "-o", str(tmp_path / "x.zip")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the events do not verify, so no bundle is made" in result.output
    assert f"seq {target}" in result.output
    assert not (tmp_path / "x.zip").exists()


def test_export_is_recorded_with_the_manifest_hash(incident, tmp_path):
    output = tmp_path / "b.zip"
    result = runner.invoke(
        app, ["evidence", "export", "--data-dir", str(incident), "--session", SESSION_B,
              "-o", str(output)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    state = GatewayState(incident)
    try:
        (access,) = [json.loads(e) for _, e in state.pending_events()]
    finally:
        state.close()
    manifest = members_of(output.read_bytes())["MANIFEST.json"]
    assert access["action"] == "cli evidence export"
    assert access["query"]["manifestSha256"] == hashlib.sha256(manifest).hexdigest()
    assert access["resultCount"] == len(orjson.loads(manifest)["events"])


def test_the_by_hand_procedure_of_verify_md_works_with_openssl_and_sha256sum(exported, tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required: the procedure VERIFY.md gives uses it")
    data, key = exported
    members = members_of(data)
    script = re.search(r"```bash\n(.*?)```", members["VERIFY.md"].decode(), re.S)
    assert script is not None

    def run(bundle: Members) -> subprocess.CompletedProcess[str]:
        directory = tmp_path / f"unzipped-{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        for name, body in bundle.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(body)
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script[1]],
            cwd=directory,
            env={"KEY": key, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = run(members)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Signature Verified Successfully" in done.stdout
    first = event_files(members)[0]
    leaf = hashlib.sha256(b"\x00" + members[first]).hexdigest()
    proof = orjson.loads(members["proofs.json"])["inclusion"][0]
    assert (proof["file"], proof["leafHash"]) == (first, leaf)
    assert f"{leaf}  -" in done.stdout
    # the same steps refuse a changed checkpoint signature and a changed event
    bad = dict(members)
    note = bad["checkpoints/latest.txt"].decode().split("\n")
    note[1] = str(int(note[1]) + 1)  # claim a bigger tree under the old signature
    bad["checkpoints/latest.txt"] = "\n".join(note).encode()
    refresh_sums(bad)
    refused = run(bad)
    assert refused.returncode != 0
    assert "Signature Verification Failure" in refused.stdout + refused.stderr
    changed = dict(members)
    changed[first] = changed[first].replace(b'"seq"', b'"seq" ', 1)
    assert run(changed).returncode != 0  # sha256sum -c names it


# RFC 8032 §7.1, tests 1-3: (secret key, public key, message, signature)
RFC8032_VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
     "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f"
     "3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f7"
     "60984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]  # fmt: skip


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
def test_the_standalone_ed25519_follows_rfc_8032(secret, public, message, signature):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))  # the vector itself
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert raw.hex() == public
    assert private.sign(bytes.fromhex(message)).hex() == signature
    pub, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert standalone.ed25519_verify(pub, msg, sig)
    assert not standalone.ed25519_verify(pub, msg + b"x", sig)
    assert not standalone.ed25519_verify(pub, msg, sig[:63] + bytes([sig[63] ^ 1]))
    assert not standalone.ed25519_verify(pub, msg, sig[:32] + (2**255).to_bytes(32, "little"))


def test_the_standalone_merkle_code_passes_the_transparency_dev_vectors():
    vectors = json.loads((Path(__file__).parent / "vectors" / "rfc6962_merkle.json").read_text())
    leaves = [hashlib.sha256(b"\x00" + bytes.fromhex(x)).digest() for x in vectors["leaves"]]
    roots = [bytes.fromhex(r) for r in vectors["roots"]]
    for vector in vectors["inclusionProofs"]:
        index, size = vector["leafIndex"], vector["treeSize"]
        proof = [bytes.fromhex(h) for h in vector["proof"]]
        assert standalone.inclusion_ok(leaves[index], index, size, proof, roots[size - 1])
        assert not standalone.inclusion_ok(leaves[index], index, size, proof, roots[0][::-1])
    for vector in vectors["consistencyProofs"]:
        first, second = vector["size1"], vector["size2"]
        proof = [bytes.fromhex(h) for h in vector["proof"]]
        assert standalone.consistency_ok(first, second, roots[first - 1], roots[second - 1], proof)
        if first != second:
            assert not standalone.consistency_ok(
                first, second, roots[first - 1][::-1], roots[second - 1], proof
            )
    assert len(vectors["inclusionProofs"]) >= 5
    assert len(vectors["consistencyProofs"]) > 3


def test_duplicate_members_and_non_bundles_are_refused(exported, tmp_path):
    data, key = exported
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("proofs.json", b"{}")  # a second member of the same name
    ours, output, theirs, script_output = verify_both(buffer.getvalue(), key, tmp_path)
    assert (ours, theirs) == (1, 1)
    assert "proofs.json: appears twice in the zip" in output
    assert "proofs.json: appears twice in the zip" in script_output
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    result = runner.invoke(app, ["evidence", "verify", str(junk), "--key", key])
    assert result.exit_code == 2
    assert "is not an evidence bundle: not a zip file" in result.output


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    member=st.sampled_from(["MANIFEST.json", "proofs.json", "report.json"]),
    value=JSON_VALUES,
    keep_format=st.booleans(),
)
def test_a_member_of_any_shape_is_a_named_failure_never_a_crash(
    exported, tmp_path, member, value, keep_format
):
    data, key = exported

    def replace(members: Members) -> None:
        shaped = value
        if keep_format and isinstance(value, dict) and member != "report.json":
            shaped = value | {"format": orjson.loads(members[member])["format"]}
        members[member] = orjson.dumps(shaped)

    from trailguard.incident.bundle import verify_bundle
    from trailguard.ledger.keys import load_verifier

    fake = forged(data, replace)
    assert not verify_bundle(fake, load_verifier(key)).valid
    path = tmp_path / "fuzzed.zip"
    path.write_bytes(fake)
    assert standalone.main([str(path), "--key", key]) == 1
