"""C2SP signed-note, tlog-checkpoint and tlog-cosignature, tested with the specs' own examples."""

from __future__ import annotations

import pytest

from genattr.ledger import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    CosignatureVerifier,
    FormatError,
    SignatureError,
    generate_signer,
    open_checkpoint,
    open_note,
    parse_note,
    sign_checkpoint,
    signer_from_skey,
    verifier_from_vkey,
)
from genattr.ledger.checkpoint import cosign_checkpoint
from genattr.ledger.merkle import EMPTY_ROOT
from genattr.ledger.note import Note, b64decode, cosignature_message, key_id, sign_note

# signed-note §"Verifier keys", Example
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# signed-note introduction
SPEC_POEM = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
# tlog-cosignature introduction (tlog-checkpoint's example plus one cosignature)
SPEC_COSIGNED = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 "
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def test_spec_vkey_verifies_spec_note() -> None:
    v = verifier_from_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo" and v.key_id == 0x530D903A and v.alg == ALG_ED25519
    assert v.key_id == key_id(v.name, ALG_ED25519, v.public_key)
    assert v.vkey == SPEC_VKEY
    note, sigs = open_note(SPEC_NOTE, [v])
    assert note.text == "This is an example message.\n"
    assert [s.name for s in sigs] == ["example.com/foo"]
    assert note.encode() == SPEC_NOTE


def test_spec_note_tampered_text_is_rejected() -> None:
    v = verifier_from_vkey(SPEC_VKEY)
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(SPEC_NOTE.replace("example message", "exemplary message"), [v])


def test_unknown_keys_are_ignored_but_one_known_must_verify() -> None:
    other = generate_signer("example.com/foo")  # same name, different key id: must be ignored
    with pytest.raises(SignatureError, match="not signed by any trusted key"):
        open_note(SPEC_NOTE, [other.verifier])
    # An extra signature from an unknown key does not spoil a valid note.
    extra = SPEC_NOTE + f"— unknown.example {'A' * 96}\n"
    open_note(extra, [verifier_from_vkey(SPEC_VKEY)])


def test_spec_poem_parses_with_empty_lines_in_text() -> None:
    note = parse_note(SPEC_POEM)
    assert note.text.endswith("ed è subito sera.\n") and "\n\n" in note.text
    assert note.signatures[0].name == "quasimodo.example/salvatore"


def test_spec_checkpoint_and_cosignature_example() -> None:
    note = parse_note(SPEC_COSIGNED)
    cp = Checkpoint.parse(note.text)
    assert cp.origin == "example.com/behind-the-sofa" and cp.size == 20852163
    assert cp.text() == note.text
    cosig = note.signatures[1]
    assert len(cosig.signature) == 72
    # tlog-cosignature's example signed message uses "time 1679315147": the timestamp in the example line.
    assert CosignatureVerifier.timestamp(cosig.signature) == 1679315147
    assert cosignature_message(note.text, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_skey_vkey_roundtrip_and_key_ids() -> None:
    for alg in (ALG_ED25519, ALG_COSIGNATURE_V1):
        for _ in range(20):  # base64 keys often contain '+', which must not confuse the parser
            s = generate_signer("log.example/a", alg)
            assert signer_from_skey(s.skey).vkey == s.vkey
            v = verifier_from_vkey(s.vkey)
            assert v == s.verifier and v.alg == alg
            assert s.skey.startswith("PRIVATE+KEY+log.example/a+")
    s = generate_signer("x")
    with pytest.raises(FormatError):
        verifier_from_vkey(s.vkey, alg=ALG_COSIGNATURE_V1)
    assert "PRIVATE" not in repr(s)


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "name",
        "na me+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong key id
        "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # upper-case hex
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",  # bad base64
        "example.com/foo+530d903a+BekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong type/key
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv",
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(FormatError):
        verifier_from_vkey(vkey)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "text\n",  # no signatures
        "text\n\n",  # blank line but no signature lines
        "text\n\n— example.com/foo Uw2Q\n",  # signature shorter than a key id
        "text\n\n— example.com/foo not-base64!\n",
        "text\n\n- example.com/foo AAAAAAAA\n",  # ASCII hyphen instead of em dash
        "text\n\n— example.com/foo AAAAAAAA",  # no final newline
        "text\n\n—  example.com/foo AAAAAAAA\n",  # double space
        "te\x01xt\n\n— example.com/foo AAAAAAAA\n",  # control character
        "text\n\n— exam+ple AAAAAAAA\n",
        "text\n\n— a b AAAAAAAA\n",
        "text\n\n— example.com/foo AAAAAAAA\n\n",
    ],
)
def test_malformed_notes(note: str) -> None:
    with pytest.raises(FormatError):
        parse_note(note)


def test_too_many_signatures_and_invalid_utf8() -> None:
    line = "— k AAAAAAAA\n"
    with pytest.raises(FormatError, match="more than"):
        parse_note("text\n\n" + line * 65)
    parse_note("text\n\n" + line * 16)  # MUST accept at least 16
    with pytest.raises(FormatError, match="UTF-8"):
        parse_note(b"t\xffxt\n\n" + line.encode())


@pytest.mark.parametrize(
    "text",
    [
        "origin\n1\n",  # too few lines
        "origin\n01\n" + "A" * 43 + "=\n",  # leading zero
        "origin\n-1\n" + "A" * 43 + "=\n",
        "origin\n1\nAAAA\n",  # root not 32 bytes
        "\n1\n" + "A" * 43 + "=\n",  # empty origin
        "origin\n1\n" + "A" * 43 + "=\n\n",  # empty extension line
        "origin\n1\n" + "A" * 43 + "=",  # no final newline
        "origin\n99999999999999999999\n" + "A" * 43 + "=\n",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.parse(text)


def test_checkpoint_sign_open_and_extensions() -> None:
    key = generate_signer("example.com/log")
    cp = Checkpoint("example.com/log", 5, b"\x07" * 32, ("ext line",))
    note = sign_checkpoint(cp, key)  # type: ignore[arg-type]
    assert note.startswith("example.com/log\n5\nBwcH")
    signed = open_checkpoint(note, [key.verifier])
    assert signed.checkpoint == cp
    with pytest.raises(SignatureError):
        open_checkpoint(note, [generate_signer("example.com/log").verifier])
    with pytest.raises(SignatureError, match="expected"):
        open_checkpoint(note, [key.verifier], origin="example.com/other")
    with pytest.raises(FormatError, match="origin"):
        sign_checkpoint(Checkpoint("example.com/other", 0, EMPTY_ROOT), key)  # type: ignore[arg-type]


def test_cosignature_roundtrip_and_forgery() -> None:
    log = generate_signer("example.com/log")
    w = generate_signer("w.example", ALG_COSIGNATURE_V1)
    note = sign_checkpoint(Checkpoint("example.com/log", 1, b"\x01" * 32), log)  # type: ignore[arg-type]
    sig = cosign_checkpoint(parse_note(note).text, w, 1700000000)  # type: ignore[arg-type]
    cosigned = parse_note(note).with_signatures([sig]).encode()
    signed = open_checkpoint(cosigned, [log.verifier], [w.verifier])  # type: ignore[list-item]
    assert [(c.name, c.timestamp) for c in signed.cosignatures] == [("w.example", 1700000000)]
    # Change the timestamp: the signature covers it.
    raw = bytearray(sig.signature)
    raw[7] ^= 1
    forged = Note(parse_note(note).text, (*parse_note(note).signatures, type(sig)(sig.name, sig.key_id, bytes(raw))))
    with pytest.raises(SignatureError, match="cosignature"):
        open_checkpoint(forged.encode(), [log.verifier], [w.verifier])  # type: ignore[list-item]
    # A cosignature is not a log signature: type 0x04 and 0x01 key ids differ for the same name and key.
    assert w.key_id != key_id(w.name, ALG_ED25519, w.verifier.public_key)


def test_sign_note_requires_newline() -> None:
    key = generate_signer("k")
    with pytest.raises(FormatError):
        sign_note("no newline", [key])  # type: ignore[list-item]
    out = sign_note("hello\n", [key])  # type: ignore[list-item]
    open_note(out, [key.verifier])


def test_b64_is_strict() -> None:
    assert b64decode("AAAA") == b"\0\0\0"
    for bad in ("AAA", "AA A", "AAAA\n", "AB==", "-_==", "AAAAé"):
        with pytest.raises(FormatError):
            b64decode(bad)
