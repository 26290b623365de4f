"""polarcloud.installer.migrate: Polar3D's connector's identity into our state dir."""
import json
import os
import stat

import pytest
import rsa
from cryptography.hazmat.primitives import serialization

from install_helpers import key_pem, rsa_key, their_conf_text
from polarcloud.installer import migrate

PIN = "480213"
BEGIN = "# polar_cloud: added by polar-cloud-klipper install.sh"
END = "# end polar_cloud"


@pytest.fixture(scope="module")
def key():
    return rsa_key()


@pytest.fixture
def theirs(tmp_path, key):
    """Their config folder after registration (PKCS#8 key, plaintext PIN)."""
    config = tmp_path / "config"
    config.mkdir()
    conf = config / "polar_cloud.conf"
    conf.write_text(their_conf_text("KL000321", PIN))
    conf.chmod(0o644)
    pem = config / "polar_cloud_key.pem"
    pem.write_bytes(key_pem(key))
    pem.chmod(0o600)
    return conf, pem, tmp_path / "polar_cloud"


def numbers(key):
    n = key.private_numbers()
    return n.public_numbers.n, n.public_numbers.e, n.d


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1"])
def test_both_pem_formats_load(key, fmt):
    loaded = migrate.load_private_pem(key_pem(key, fmt))
    assert (loaded.n, loaded.e, loaded.d) == numbers(key)
    signature = rsa.sign(b"challenge", loaded, "SHA-256")
    assert rsa.verify(b"challenge", signature, loaded) == "SHA-256"


def test_unusable_keys_are_refused_clearly(key):
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(migrate.MigrateError, match="encrypted"):
        migrate.load_private_pem(encrypted)
    with pytest.raises(migrate.MigrateError, match="not a PEM"):
        migrate.load_private_pem(b"garbage")
    body = key_pem(key).replace(b"M", b"N", 3)
    with pytest.raises(migrate.MigrateError):
        migrate.load_private_pem(body)


def test_import_writes_pkcs1_key_and_serial_then_drops_the_pin(theirs, key,
                                                                capsys):
    conf, pem, state_dir = theirs
    before = conf.read_text()
    assert migrate.migrate_identity(str(conf), str(pem), str(state_dir)) \
        == "imported"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    our_key = state_dir / "polar_cloud_key.pem"
    assert stat.S_IMODE(our_key.stat().st_mode) == 0o600
    assert our_key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    loaded = rsa.PrivateKey.load_pkcs1(our_key.read_bytes())
    assert (loaded.n, loaded.e, loaded.d) == numbers(key)
    state = json.loads((state_dir / "state.json").read_text())
    assert state["serial"] == "KL000321"
    assert state.get("mac") == migrate.their_mac()
    assert stat.S_IMODE((state_dir / "state.json").stat().st_mode) == 0o600
    # only the pin line went; the mode stayed
    after = conf.read_text()
    assert after == before.replace("pin = %s\n" % (PIN,), "")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert pem.read_bytes() == key_pem(key)
    out = capsys.readouterr().out
    assert PIN not in out and "BEGIN" not in out
    # again: nothing more to do
    assert migrate.migrate_identity(str(conf), str(pem), str(state_dir)) \
        == "already"
    assert conf.read_text() == after


def test_merge_keeps_other_state_and_replaces_an_unregistered_key(theirs):
    conf, pem, state_dir = theirs
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text(json.dumps(
        {"active_job": {"id": "123"}, "pending_job_events": []}))
    (state_dir / "polar_cloud_key.pem").write_bytes(key_pem(rsa_key(),
                                                            "pkcs1"))
    assert migrate.import_identity(str(conf), str(pem), str(state_dir),
                                   "AA:BB:CC:DD:EE:FF") == "imported"
    state = json.loads((state_dir / "state.json").read_text())
    assert state == {"active_job": {"id": "123"}, "pending_job_events": [],
                     "serial": "KL000321", "mac": "AA:BB:CC:DD:EE:FF"}


def test_existing_registration_is_kept(theirs, capsys):
    conf, pem, state_dir = theirs
    state_dir.mkdir(mode=0o700)
    ours = json.dumps({"serial": "KL000999"})
    (state_dir / "state.json").write_text(ours)
    assert migrate.migrate_identity(str(conf), str(pem), str(state_dir)) \
        == "kept"
    assert (state_dir / "state.json").read_text() == ours
    assert not (state_dir / "polar_cloud_key.pem").exists()
    assert PIN in conf.read_text()
    out = capsys.readouterr().out
    assert "KL000999" in out and "still holds your Polar Cloud PIN" in out
    assert PIN not in out


def test_same_serial_with_another_key_is_kept(theirs):
    conf, pem, state_dir = theirs
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text('{"serial": "KL000321"}')
    other = key_pem(rsa_key(), "pkcs1")
    (state_dir / "polar_cloud_key.pem").write_bytes(other)
    assert migrate.import_identity(str(conf), str(pem), str(state_dir)) \
        == "kept"
    assert (state_dir / "polar_cloud_key.pem").read_bytes() == other


def test_nothing_to_import(theirs, tmp_path, capsys):
    conf, pem, state_dir = theirs
    assert migrate.import_identity(str(tmp_path / "none.conf"), str(pem),
                                   str(state_dir)) == "nothing"
    conf.write_text(their_conf_text("", PIN))
    assert migrate.import_identity(str(conf), str(pem), str(state_dir)) \
        == "nothing"
    conf.write_text(their_conf_text("KL000321", PIN))
    pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert migrate.import_identity(str(conf), str(pem), str(state_dir)) \
        == "nothing"
    pem.unlink()
    assert migrate.import_identity(str(conf), str(pem), str(state_dir)) \
        == "nothing"
    assert "register again" in capsys.readouterr().out
    assert not state_dir.exists()


def test_unreadable_state_is_not_replaced(theirs):
    conf, pem, state_dir = theirs
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text("{not json")
    with pytest.raises(migrate.MigrateError, match="fix or remove it"):
        migrate.import_identity(str(conf), str(pem), str(state_dir))
    assert (state_dir / "state.json").read_text() == "{not json"


def test_pin_dropped_only_in_its_section_and_through_a_symlink(tmp_path):
    real = tmp_path / "real.conf"
    real.write_text("[other]\npin = 1\n\n[polar_cloud]\nusername = a@b.c\n"
                    "pin = 4242\nserial_number = KL1\n")
    real.chmod(0o640)
    link = tmp_path / "polar_cloud.conf"
    link.symlink_to(real)
    assert migrate.drop_pin(str(link))
    assert link.is_symlink()
    assert real.read_text() == ("[other]\npin = 1\n\n[polar_cloud]\n"
                                "username = a@b.c\nserial_number = KL1\n")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert not migrate.drop_pin(str(link))


THEIR_MOONRAKER = """[server]
host: 0.0.0.0

[polar_cloud]
# Polar Cloud plugin configuration

[update_manager polar_cloud]
type: git_repo
channel: stable
path: /home/pi/polar-cloud
origin: https://github.com/Polar3D/polar-cloud-klipper.git
primary_branch: main
managed_services: polar_cloud
install_script: install.sh
"""


@pytest.mark.parametrize("tail", ["", "\n# cameras\n[webcam a]\nservice: x\n"])
def test_their_moonraker_sections_removed(tmp_path, tail):
    conf = tmp_path / "moonraker.conf"
    conf.write_text(THEIR_MOONRAKER + tail)
    os.chmod(conf, 0o664)
    assert migrate.strip_foreign_sections(str(conf), BEGIN, END, True)
    want = "[server]\nhost: 0.0.0.0\n" + tail
    assert conf.read_text() == want
    assert stat.S_IMODE(conf.stat().st_mode) == 0o664
    assert not migrate.strip_foreign_sections(str(conf), BEGIN, END, True)


def test_our_block_and_sections_with_options_stay(tmp_path):
    ours = (BEGIN + "\n[polar_cloud]\n\n[update_manager polar_cloud]\n"
            "type: git_repo\n" + END + "\n")
    text = "[server]\nhost: 0.0.0.0\n\n[polar_cloud]\nwebcam: cam\n\n" + ours
    conf = tmp_path / "moonraker.conf"
    conf.write_text(text)
    assert not migrate.strip_foreign_sections(str(conf), BEGIN, END, True)
    assert conf.read_text() == text
