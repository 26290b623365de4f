"""Key handling: golden signature, SPKI PEM, atomic private files."""
import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from polarcloud import keys, store
from polarcloud.connector.runner import ChildError
from polarcloud.workers import keys as keys_worker

GOLDEN_KEY = os.path.join(os.path.dirname(__file__), "data", "golden_key.pem")
GOLDEN_CHALLENGE = "Tm9uY2UtNDI=éü-challenge"   # signed as UTF-8, not decoded
GOLDEN_SIGNATURE = (
    "KLGZmfCxd5o1q4IbrqrqtWwWb7BjJLaPDKczt9GcoN8TcCHPgcEPsanZT+6pXtINk3+PFy97"
    "TsvoDQD7lGS80lHCC1VK7154gqioNTj+ZvfSv5NQa+72qwhXGHcY5YiAnCHUbBJlnTTdssDh"
    "C8kk8ac/bowKkMSDFm0GIRGjj66akOTXmxZRKGPBuidwQsWEJSeOUUvj3rKO4IQeraFDrp6c"
    "6DytRgzGSm8iEoexc0OeCnf7ddu93zXeQLnntXbR5f9boP4dD9H+etCRyZ1MgpmMIDClobnI"
    "W66iQF6cx66OFb9kmugSREj8VFUGg2LYnSv6UKqdh+ptIGQDeAOeYw==")


def test_golden_signature_in_child_process():
    signature, public_pem = keys.sign_challenge(GOLDEN_KEY, GOLDEN_CHALLENGE)
    assert signature == GOLDEN_SIGNATURE
    assert "\n" not in signature and len(base64.b64decode(signature)) == 256


def test_signature_verifies_with_independent_library():
    signature, public_pem = keys.sign_challenge(GOLDEN_KEY, GOLDEN_CHALLENGE)
    pub = serialization.load_pem_public_key(public_pem.encode())
    pub.verify(base64.b64decode(signature), GOLDEN_CHALLENGE.encode("utf-8"),
               padding.PKCS1v15(), hashes.SHA256())


def test_spki_pem_matches_independent_encoder():
    priv = keys_worker.load_private(GOLDEN_KEY)
    ours = keys_worker.public_pem(priv)
    assert ours.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert ours.endswith("-----END PUBLIC KEY-----\n")
    body = ours.strip().splitlines()[1:-1]
    assert all(len(line) == 64 for line in body[:-1])
    with open(GOLDEN_KEY, "rb") as f:
        theirs = serialization.load_pem_private_key(f.read(), None)
    expected = theirs.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert ours == expected


def test_generate_key_is_private_and_kept(tmp_path):
    path = str(tmp_path / "state" / "key.pem")
    first, moved = keys.generate_key(path, timeout=300)
    assert moved is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    # an existing key is never replaced (the cloud knows its public half)
    assert keys.generate_key(path, timeout=300) == (first, None)


def test_unreadable_key_is_moved_aside_never_overwritten(tmp_path):
    path = str(tmp_path / "key.pem")
    with open(GOLDEN_KEY, "rb") as f:
        truncated = f.read()[:200]
    store.atomic_write(path, truncated, 0o600)
    public, moved = keys.generate_key(path, timeout=300)
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert moved.startswith(path + ".corrupt-")
    with open(moved, "rb") as f:
        assert f.read() == truncated


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / "state.json")
    store.atomic_write(path, b"good", 0o600)

    def boom(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        store.atomic_write(path, b"half", 0o600)
    with open(path, "rb") as f:
        assert f.read() == b"good"
    assert os.listdir(str(tmp_path)) == ["state.json"]


def test_state_store_ignores_blank_serial(tmp_path):
    st = store.StateStore(str(tmp_path))
    st.save({"serial": "  "})
    assert "serial" not in st.load()


@pytest.mark.parametrize("content", [b"{not json", b'{"serial": "KL1"',
                                     b'["KL1"]', b"\xff\xfe", b"",
                                     b'{"serial": 123}',
                                     b'{"serial": ["KL1"]}'])
def test_unreadable_state_is_kept_aside(tmp_path, content):
    st = store.StateStore(str(tmp_path))
    with open(st.state_path, "wb") as f:
        f.write(content)
    with pytest.raises(store.StateProblem) as e:
        st.load()
    assert e.value.safe_to_save and "kept as" in str(e.value)
    aside = [n for n in os.listdir(str(tmp_path)) if ".corrupt-" in n]
    assert len(aside) == 1 and not os.path.exists(st.state_path)
    with open(os.path.join(str(tmp_path), aside[0]), "rb") as f:
        assert f.read() == content
    assert st.load() == {}      # now nothing is there


def test_move_aside_never_replaces_an_earlier_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(store.time, "strftime", lambda fmt: "20260101-000000")
    path = os.path.join(str(tmp_path), "state.json")
    kept = []
    for content in (b"first", b"second", b"third"):
        with open(path, "wb") as f:
            f.write(content)
        kept.append(store.move_aside(path))
    assert len(set(kept)) == 3
    for aside, content in zip(kept, (b"first", b"second", b"third")):
        with open(aside, "rb") as f:
            assert f.read() == content


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_unreadable_key_is_named_and_left_alone_when_signing(tmp_path,
                                                             damage):
    path = os.path.join(str(tmp_path), "polar_cloud_key.pem")
    with open(GOLDEN_KEY, "rb") as f:
        good = f.read()
    if damage == "truncated":
        with open(path, "wb") as f:
            f.write(good[:len(good) // 2])
    with pytest.raises(ChildError) as e:
        keys.sign_challenge(path, GOLDEN_CHALLENGE)
    assert ("unreadable" if damage == "truncated" else "missing") \
        in str(e.value)
    assert "register again" in str(e.value)
    assert sorted(os.listdir(str(tmp_path))) == (
        ["polar_cloud_key.pem"] if damage == "truncated" else [])
    if damage == "truncated":
        with open(path, "rb") as f:
            assert f.read() == good[:len(good) // 2]


def test_write_problem_names_the_folder(tmp_path):
    st = store.StateStore(os.path.join(str(tmp_path), "state"))
    assert st.write_problem() is None
    assert os.listdir(st.state_dir) == []      # the probe is gone
    blocker = os.path.join(str(tmp_path), "file")
    with open(blocker, "w") as f:
        f.write("x")
    st = store.StateStore(os.path.join(blocker, "state"))
    assert blocker in st.write_problem()
