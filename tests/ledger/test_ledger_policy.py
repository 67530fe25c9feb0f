"""C2SP tlog-policy files: the spec's example structure, groups, quorum evaluation and syntax errors."""

from __future__ import annotations

import pytest

from genattr.ledger import ALG_COSIGNATURE_V1, FormatError, Policy, QuorumError, generate_signer
from genattr.ledger.checkpoint import Checkpoint, cosign_checkpoint, sign_checkpoint
from genattr.ledger.note import parse_note


@pytest.fixture(scope="module")
def keys() -> dict:
    log = generate_signer("example.com/log")
    ws = {n: generate_signer(f"{n.lower()}.example", ALG_COSIGNATURE_V1) for n in ("X1", "X2", "X3", "Y1", "Y2", "Y3")}
    return {"log": log, **ws}


def spec_policy(keys: dict) -> str:
    # The example policy of c2sp.org/tlog-policy, with real keys.
    return f"""log {keys["log"].vkey}

witness X1 {keys["X1"].vkey}
witness X2 {keys["X2"].vkey}
witness X3 {keys["X3"].vkey}
group X-witnesses 2 X1 X2 X3

witness Y1 {keys["Y1"].vkey}
witness Y2 {keys["Y2"].vkey}
witness Y3 {keys["Y3"].vkey} https://y3.example/witness
group Y-witnesses any Y1 Y2 Y3

  # comment lines and indentation are fine
group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_spec_example_structure(keys: dict) -> None:
    p = Policy.parse(spec_policy(keys))
    assert p.quorum == "X-and-Y" and len(p.witnesses) == 6 and p.witnesses["Y3"].url == "https://y3.example/witness"
    assert not p.satisfied_by(["X1", "X2"])
    assert not p.satisfied_by(["X1", "Y1", "Y2"])
    assert p.satisfied_by(["X1", "X3", "Y2"])
    assert Policy.parse(p.encode()).satisfied_by(["X2", "X3", "Y1"])


def test_verify_checkpoints_against_policy(keys: dict) -> None:
    p = Policy.parse(spec_policy(keys))
    note = sign_checkpoint(Checkpoint("example.com/log", 3, b"\x05" * 32), keys["log"])
    text = parse_note(note).text

    def cosigned(*names: str) -> str:
        return parse_note(note).with_signatures(cosign_checkpoint(text, keys[n], 1700000000) for n in names).encode()

    assert sorted(p.witness_names(p.verify(cosigned("X1", "X2", "Y3")))) == ["X1", "X2", "Y3"]
    with pytest.raises(QuorumError, match="X1, X2"):
        p.verify(cosigned("X1", "X2"))
    with pytest.raises(QuorumError):
        Policy().verify(note)  # no log keys at all
    assert Policy.parse(f"log {keys['log'].vkey}\nquorum none\n").verify(note).checkpoint.size == 3


@pytest.mark.parametrize(
    "body,match",
    [
        ("quorum X9", "undefined"),
        ("", "no quorum"),
        ("quorum none\nquorum none", "exactly one"),
        ("group G 1 none\nquorum G", "unknown group member"),
        ("group G 4 X1 X2 X3\nquorum G", "between"),
        ("group G 0 X1\nquorum G", "positive"),
        ("group G 01 X1\nquorum G", "positive"),
        ("group G two X1\nquorum G", "positive"),
        ("group G 1 X1 X1\nquorum G", "twice"),
        ("group X1 1 X2\nquorum X1", "twice"),
        ("witness X1 {X2}\nquorum none", "twice"),
        ("witness Z {X1}\nquorum none", "duplicate witness key"),
        ("witness Z {log}\nquorum none", "type"),
        ("log {X1}\nquorum none", "type"),
        ("log {log}\nquorum none", "duplicate log key"),
        ("frobnicate\nquorum none", "unknown keyword"),
        ("witness\nquorum none", "expected"),
        ("quorum none\x01", "control"),
    ],
)
def test_policy_errors(keys: dict, body: str, match: str) -> None:
    head = f"log {keys['log'].vkey}\n" + "".join(f"witness {n} {keys[n].vkey}\n" for n in ("X1", "X2", "X3"))
    body = body.replace("{X1}", keys["X1"].vkey).replace("{X2}", keys["X2"].vkey).replace("{log}", keys["log"].vkey)
    with pytest.raises(FormatError, match=match):
        Policy.parse(head + body)


def test_tabs_and_bytes(keys: dict) -> None:
    p = Policy.parse(f"\tlog\t{keys['log'].vkey}\t\nquorum\tnone\n".encode())
    assert p.quorum == "none" and len(p.logs) == 1
    with pytest.raises(FormatError):
        Policy.parse(b"\xff\xfe")
