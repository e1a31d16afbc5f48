"""C2SP signed notes (Go sumdb/note vector) and tlog checkpoints."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailguard.ledger.checkpoint import (
    CheckpointError,
    open_checkpoint,
    parse_checkpoint_text,
    read_unverified,
    sign_checkpoint,
)
from trailguard.ledger.note import (
    NoteError,
    SignatureError,
    Signer,
    Verifier,
    key_id,
    open_note,
    parse,
    sign,
)

VECTORS_DIR = Path(__file__).parent / "vectors"
GO = json.loads((VECTORS_DIR / "sumdb_note.json").read_text(encoding="utf-8"))
ENOCH = GO["otherKeys"][0]
C2SP_EXAMPLE = (VECTORS_DIR / "tlog_checkpoint_example.txt").read_text(encoding="utf-8")
EM_DASH = "\u2014"


def _raw_public_key(vkey: str) -> bytes:
    """The 32 raw Ed25519 bytes from a ``name+hash+base64(0x01 || key)`` verifier string."""
    return base64.b64decode(vkey.split("+", 2)[2])[1:]


def _raises_exactly(exc_type, func, *args):
    """Call ``func`` expecting ``exc_type`` itself, not a subclass of it."""
    with pytest.raises(exc_type) as info:
        func(*args)
    assert info.type is exc_type, f"expected {exc_type.__name__}, got {info.type.__name__}"
    return info.value


@pytest.fixture(scope="module")
def peter() -> Signer:
    return Signer.from_string(GO["skey"])


@pytest.fixture(scope="module")
def other_signer() -> Signer:
    return Signer.generate("Mallory")


# --- the Go sumdb/note vector -------------------------------------------------------------


def test_go_signer_key_derives_the_published_verifier_key(peter):
    assert peter.name == GO["name"]
    assert peter.verifier.to_string() == GO["vkey"]


def test_go_signer_key_round_trips_through_to_string(peter):
    assert peter.to_string() == GO["skey"]


@pytest.mark.parametrize("vkey", [GO["vkey"], ENOCH["vkey"]])
def test_go_verifier_key_round_trips_through_to_string(vkey):
    assert Verifier.from_string(vkey).to_string() == vkey


@pytest.mark.parametrize(
    ("name", "vkey", "key_hash"),
    [(GO["name"], GO["vkey"], GO["keyHash"]), (ENOCH["name"], ENOCH["vkey"], ENOCH["keyHash"])],
)
def test_key_id_matches_the_published_key_hash(name, vkey, key_hash):
    assert key_id(name, _raw_public_key(vkey)) == bytes.fromhex(key_hash)
    assert Verifier.from_string(vkey).key_id == bytes.fromhex(key_hash)


def test_signing_the_go_text_reproduces_the_published_note_exactly(peter):
    assert peter.signature_line(GO["text"]) == GO["signatureLine"]
    assert sign(GO["text"], peter) == GO["signedNote"]
    assert GO["signedNote"] == GO["text"] + "\n" + GO["signatureLine"]


def test_published_note_opens_with_the_published_verifier_key():
    assert open_note(GO["signedNote"], Verifier.from_string(GO["vkey"])) == GO["text"]


def test_doubly_signed_go_message_parses_into_both_published_signatures():
    parsed = parse(GO["open"]["message"])
    assert parsed.text == GO["text"]
    assert parsed.signatures == [
        (sig["name"], bytes.fromhex(sig["hash"]), base64.b64decode(sig["base64"])[4:])
        for sig in GO["open"]["expectedSigs"]
    ]


@pytest.mark.parametrize("vkey", [GO["vkey"], ENOCH["vkey"]], ids=["PeterNeumann", "EnochRoot"])
def test_doubly_signed_go_message_opens_with_either_signers_key(vkey):
    # TestOpen: with both keys both signatures verify; a signature by another key is ignored.
    assert open_note(GO["open"]["message"], Verifier.from_string(vkey)) == GO["text"]


@pytest.mark.parametrize(
    "bad", GO["badVerifierKeys"]["keys"], ids=lambda bad: bad["reason"].replace(" ", "-")
)
def test_published_bad_verifier_keys_are_rejected(bad):
    _raises_exactly(NoteError, Verifier.from_string, bad["key"])


@pytest.mark.parametrize(
    "vkey",
    [
        GO["vkey"].replace("c74f20a3", "c74f20a4"),  # key id does not match the key
        GO["vkey"].replace("+c74f20a3+", "+c74f20+"),  # key id too short
        "PeterNeumann+c74f20a3",  # no key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
        GO["vkey"][:-1] + "!",  # not base64
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey):
    _raises_exactly(NoteError, Verifier.from_string, vkey)


@pytest.mark.parametrize(
    "skey",
    [
        GO["skey"].replace("c74f20a3", "c74f20a4"),  # key id does not match the key
        GO["skey"].removeprefix("PRIVATE+KEY+"),  # missing prefix
        GO["skey"].replace("+AYEK", "+AoEK"),  # unknown algorithm byte
        "PRIVATE+KEY+PeterNeumann+c74f20a3",  # no key
    ],
)
def test_malformed_signer_keys_are_rejected(skey):
    _raises_exactly(NoteError, Signer.from_string, skey)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "tab\tname"])
def test_generating_a_key_with_an_invalid_name_is_rejected(name):
    _raises_exactly(NoteError, Signer.generate, name)


# --- tampering and wrong keys -------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_note_with_a_changed_character_fails_signature_check(data):
    text = GO["text"]
    position = data.draw(st.sampled_from([i for i, ch in enumerate(text) if ch != "\n"]))
    replacement = data.draw(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(lambda c: c != text[position])
    )
    tampered = GO["signedNote"][:position] + replacement + GO["signedNote"][position + 1 :]
    with pytest.raises(SignatureError):
        open_note(tampered, Verifier.from_string(GO["vkey"]))


def test_note_with_an_extra_line_fails_signature_check():
    tampered = GO["text"] + "extra line\n\n" + GO["signatureLine"]
    with pytest.raises(SignatureError):
        open_note(tampered, Verifier.from_string(GO["vkey"]))


def test_note_signed_by_another_key_is_rejected_naming_both_keys(other_signer):
    peter_verifier = Verifier.from_string(GO["vkey"])
    note = sign(GO["text"], other_signer)
    error = _raises_exactly(SignatureError, open_note, note, peter_verifier)
    assert f"PeterNeumann+{GO['keyHash']}" in str(error)
    assert f"Mallory+{other_signer.verifier.key_id.hex()}" in str(error)


def test_note_signed_by_a_different_key_with_the_same_name_is_rejected():
    impostor = Signer.generate(GO["name"])
    impostor_id = impostor.verifier.key_id.hex()
    assert impostor_id != GO["keyHash"]
    with pytest.raises(SignatureError, match=f"no signature by key PeterNeumann\\+{GO['keyHash']}"):
        open_note(sign(GO["text"], impostor), Verifier.from_string(GO["vkey"]))


def test_forged_signature_under_the_right_key_id_is_rejected(other_signer):
    forged_signature = other_signer.private_key.sign(GO["text"].encode())
    blob = bytes.fromhex(GO["keyHash"]) + forged_signature
    note = f"{GO['text']}\n{EM_DASH} {GO['name']} {base64.b64encode(blob).decode()}\n"
    error = _raises_exactly(SignatureError, open_note, note, Verifier.from_string(GO["vkey"]))
    assert "does not verify" in str(error)


def test_go_message_without_the_verifiers_signature_is_rejected():
    only_enoch = GO["text"] + "\n" + GO["open"]["enochSig"]
    with pytest.raises(SignatureError):
        open_note(only_enoch, Verifier.from_string(GO["vkey"]))
    assert open_note(only_enoch, Verifier.from_string(ENOCH["vkey"])) == GO["text"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=40
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_valid_text_round_trips_through_sign_and_open(lines):
    signer = Signer.generate("roundtrip.example/log")
    text = "".join(line + "\n" for line in lines)
    note = sign(text, signer)
    assert note.startswith(text + "\n" + EM_DASH + " roundtrip.example/log ")
    assert open_note(note, signer.verifier) == text
    assert open_note(note, Verifier.from_string(signer.verifier.to_string())) == text


def test_generated_signer_round_trips_through_its_string_form():
    signer = Signer.generate("gen")
    restored = Signer.from_string(signer.to_string())
    assert restored.verifier.to_string() == signer.verifier.to_string()
    assert open_note(sign("hello\n", restored), signer.verifier) == "hello\n"


# --- malformed notes ----------------------------------------------------------------------


MALFORMED_NOTES = {
    "no-blank-line": GO["text"] + GO["signatureLine"],
    "no-trailing-newline": GO["signedNote"].removesuffix("\n"),
    "hyphen-instead-of-em-dash": GO["signedNote"].replace(EM_DASH, "-"),
    "en-dash-instead-of-em-dash": GO["signedNote"].replace(EM_DASH, "\u2013"),
    "bad-base64": GO["signedNote"].replace("x08go/", "x08go!"),
    "truncated-signature": f"{GO['text']}\n{EM_DASH} {GO['name']} AAAA\n",
    "no-signatures": GO["text"] + "\n",
    "empty-line-among-signatures": GO["text"] + "\n" + GO["signatureLine"] + "\n",
    "signature-line-without-signature": f"{GO['text']}\n{EM_DASH} {GO['name']}\n",
    "control-character-in-text": GO["signedNote"].replace("If you", "If\tyou"),
}


@pytest.mark.parametrize("note", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_note_is_rejected_as_malformed(note):
    _raises_exactly(NoteError, parse, note)
    _raises_exactly(NoteError, open_note, note, Verifier.from_string(GO["vkey"]))


@pytest.mark.parametrize(
    "text",
    ["no trailing newline", "blank\n\nline inside\n", "tab\tcharacter\n", ""],
    ids=["no-trailing-newline", "blank-line", "control-character", "empty"],
)
def test_signing_text_that_cannot_be_a_note_is_rejected(peter, text):
    _raises_exactly(NoteError, sign, text, peter)


# --- checkpoints --------------------------------------------------------------------------


origins = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
) | st.just("example.com/behind-the-sofa")


@settings(max_examples=100, deadline=None)
@given(origins, st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32))
def test_signed_checkpoint_round_trips_origin_size_and_root(origin, size, root):
    signer = Signer.generate("log.example")
    signed = sign_checkpoint(origin, size, root, signer)
    expected_text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    assert signed.note.startswith(expected_text + "\n" + EM_DASH + " log.example ")
    assert signed.root_b64 == base64.b64encode(root).decode()

    opened = open_checkpoint(signed.note, signer.verifier)
    assert (opened.origin, opened.tree_size, opened.root_hash) == (origin, size, root)
    assert opened.note == signed.note
    unverified = read_unverified(signed.note)
    assert (unverified.origin, unverified.tree_size, unverified.root_hash) == (origin, size, root)


def test_c2sp_example_checkpoint_parses_without_verification():
    checkpoint = read_unverified(C2SP_EXAMPLE)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.tree_size == 20852163
    assert len(checkpoint.root_hash) == 32
    assert checkpoint.root_b64 == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert checkpoint.note == C2SP_EXAMPLE


def test_c2sp_example_checkpoint_does_not_open_with_an_unrelated_key():
    verifier = Signer.generate("example.com/behind-the-sofa").verifier
    with pytest.raises(CheckpointError):
        open_checkpoint(C2SP_EXAMPLE, verifier)


@pytest.fixture(scope="module")
def signed_checkpoint(peter):
    return sign_checkpoint("log.example/trail", 1234, bytes(range(32)), peter)


def test_checkpoint_with_tampered_size_fails_to_open(signed_checkpoint, peter):
    tampered = signed_checkpoint.note.replace("\n1234\n", "\n1235\n", 1)
    assert tampered != signed_checkpoint.note
    with pytest.raises(CheckpointError):
        open_checkpoint(tampered, peter.verifier)


def test_checkpoint_with_tampered_root_fails_to_open(signed_checkpoint, peter):
    other_root = base64.b64encode(bytes([1]) + bytes(range(1, 32))).decode()
    tampered = signed_checkpoint.note.replace(signed_checkpoint.root_b64, other_root, 1)
    assert tampered != signed_checkpoint.note
    with pytest.raises(CheckpointError):
        open_checkpoint(tampered, peter.verifier)


def test_checkpoint_opened_with_another_key_is_rejected(signed_checkpoint, other_signer):
    with pytest.raises(CheckpointError):
        open_checkpoint(signed_checkpoint.note, other_signer.verifier)


ROOT_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"origin\n01\n{ROOT_B64}\n",
        f"origin\n00\n{ROOT_B64}\n",
        f"origin\n-1\n{ROOT_B64}\n",
        f"origin\n+1\n{ROOT_B64}\n",
        f"origin\n 1\n{ROOT_B64}\n",
        f"origin\n\n{ROOT_B64}\n",
        f"origin\n1\n{base64.b64encode(bytes(31)).decode()}\n",
        f"origin\n1\n{base64.b64encode(bytes(33)).decode()}\n",
        "origin\n1\nnot base64!\n",
        f"origin\n1\n{ROOT_B64}",
        "origin\n1\n",
    ],
    ids=[
        "leading-zero",
        "double-zero",
        "negative",
        "plus-sign",
        "space",
        "empty-size",
        "31-byte-root",
        "33-byte-root",
        "bad-base64-root",
        "no-final-newline",
        "no-root-line",
    ],
)
def test_malformed_checkpoint_text_is_rejected(text):
    _raises_exactly(CheckpointError, parse_checkpoint_text, text)


@pytest.mark.parametrize(
    "size_line",
    ["\u0663", "\uff13", "\u00b2"],
    ids=["arabic-indic-three", "fullwidth-three", "superscript-two"],
)
def test_checkpoint_size_with_non_ascii_digits_is_rejected(size_line):
    _raises_exactly(CheckpointError, parse_checkpoint_text, f"origin\n{size_line}\n{ROOT_B64}\n")


def test_checkpoint_text_with_extension_lines_parses():
    assert parse_checkpoint_text(f"origin\n0\n{ROOT_B64}\nextension\n") == ("origin", 0, bytes(32))


def test_validly_signed_checkpoint_with_a_leading_zero_size_is_rejected(peter):
    note = sign(f"log.example/trail\n0123\n{ROOT_B64}\n", peter)
    assert open_note(note, peter.verifier)  # the signature itself is fine
    _raises_exactly(CheckpointError, open_checkpoint, note, peter.verifier)
    _raises_exactly(CheckpointError, read_unverified, note)


def test_validly_signed_checkpoint_with_a_31_byte_root_is_rejected(peter):
    note = sign(f"log.example/trail\n5\n{base64.b64encode(bytes(31)).decode()}\n", peter)
    _raises_exactly(CheckpointError, open_checkpoint, note, peter.verifier)


@pytest.mark.parametrize(
    ("origin", "root"),
    [("log", bytes(31)), ("log", bytes(33)), ("", bytes(32)), ("two\nlines", bytes(32))],
    ids=["31-byte-root", "33-byte-root", "empty-origin", "multi-line-origin"],
)
def test_signing_a_malformed_checkpoint_is_rejected(peter, origin, root):
    _raises_exactly(CheckpointError, sign_checkpoint, origin, 1, root, peter)


def test_malformed_note_around_a_checkpoint_is_a_checkpoint_error():
    _raises_exactly(CheckpointError, read_unverified, C2SP_EXAMPLE.replace("\n\n", "\n"))
