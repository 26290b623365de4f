"""The link half of the fault campaign (issue 10; docs/reliability.md).

Cloud outages of every kind, a broken handshake, a storm of hostile packets,
an untrusted TLS certificate and the log during a long outage, against real
Klippy + Moonraker on loopback (the session printer) and the emulator.

Default (CI) sizes keep the file near a minute; POLAR_CAMPAIGN=full runs
the campaign's sizes. POLAR_CAMPAIGN_SEED picks the packets and outages
(printed); POLAR_CAMPAIGN_REPORT names a JSON file the figures are merged
into (bench/faults_link.py reads it).
"""
import json
import os
import random
import statistics
import time

import pytest

import test_connection as TC
from conftest import (EMAIL, PIN, forget_registration, go_online, reset_cloud,
                      still_obeys_a_good_command)
from harness import PrinterHarness
from polar_emulator import PolarEmulator
from polarcloud.backoff import Backoff
from polarcloud.connector import connection as C
from polarcloud.connector import registration as R
from tlscerts import self_signed, server_context

FULL = os.environ.get("POLAR_CAMPAIGN") == "full"
SEED = int(os.environ.get("POLAR_CAMPAIGN_SEED") or 10)
OUTAGES = 40 if FULL else 4     # CI: one of each kind
OUTAGE_SECONDS = (1., 8.) if FULL else (1., 2.)
PACKETS = 10000 if FULL else 2000
LOG_WINDOW = 180. if FULL else 16.
BACKOFF_CAP = C.RECONNECT_BACKOFF[1]
WRONG_SERIAL = "KL999999"

conn = TC.conn     # CloudConnection without Klippy, short timeouts
pytestmark = pytest.mark.timeout(1800 if FULL else 300)


def report(section, figures):
    """Merge figures into the campaign report (if one was asked for)."""
    path = os.environ.get("POLAR_CAMPAIGN_REPORT")
    print("%s: %s" % (section, json.dumps(figures, sort_keys=True)))
    if not path:
        return
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data[section] = dict(figures, seed=SEED, full=FULL)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100. * (len(values) - 1))))]


def distribution(values):
    return {"n": len(values), "p50": round(statistics.median(values), 2),
            "p95": round(percentile(values, 95), 2),
            "max": round(max(values), 2)}


def verified_hello(cloud, start, timeout):
    rec = cloud.wait_for("hello", start=start, timeout=timeout)
    assert rec.verified, rec
    return rec


def assert_klippy_clean(printer, log_from=0):
    """Ready, and no exception in klippy.log (from log_from on) or on
    Klippy's stderr (where exceptions escaping a thread go)."""
    assert printer.klippy.call("info")["state"] == "ready"
    log = printer.log_text()[log_from:]
    for bad in ("Traceback", "Internal error", "internal error"):
        assert bad not in log, log[log.index(bad) - 2000:log.index(bad) + 2000]
    with open(os.path.join(printer.tmp, "klippy.stderr"),
              errors="replace") as f:
        stderr = f.read()
    assert "Traceback" not in stderr, stderr[-3000:]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- outages -----------------------------------------------------------------

OUTAGE_KINDS = ("reset", "close", "503", "tcp")


def begin_outage(cloud, kind):
    """reset: TCP dropped, and again at every handshake; close: Socket.IO
    disconnect, and every new connection closed so; 503: dropped, then HTTP
    503 at the Engine.IO handshake; tcp: the listener stopped."""
    if kind == "tcp":
        cloud.stop()
        return
    cloud.refuse = kind
    cloud.disconnect_all(abrupt=kind != "close")


def end_outage(cloud, kind):
    cloud.refuse = None
    if kind == "tcp":
        cloud.start()


def test_outages_recover_within_the_backoff_cap(online, printer, cloud):
    serial = online
    rng = random.Random(SEED)
    log_from = len(printer.log_text())
    cloud.take_peak_sessions()
    delays, kinds = [], {}
    print("outages: seed %d, %d outages" % (SEED, OUTAGES))
    try:
        for i in range(OUTAGES):
            kind = OUTAGE_KINDS[i % len(OUTAGE_KINDS)]
            seconds = rng.uniform(*OUTAGE_SECONDS)
            after_welcome = i % 3 == 2
            if after_welcome:
                # a new connection, and the outage as soon as it is welcomed
                mark = cloud.mark()
                cloud.disconnect_all(abrupt=True)
                cloud.wait_for("connect", start=mark,
                               timeout=BACKOFF_CAP + C.CONNECT_TIMEOUT)
            begin_outage(cloud, kind)
            time.sleep(seconds)
            mark = cloud.mark()
            end = time.monotonic()
            end_outage(cloud, kind)
            hello = verified_hello(cloud, mark,
                                   BACKOFF_CAP + C.CONNECT_TIMEOUT + 5)
            cloud.wait_for("status", start=mark, timeout=15,
                           pred=lambda d: d.get("serialNumber") == serial)
            delays.append(hello.t - end)
            kinds.setdefault(kind + (" after welcome" if after_welcome
                                     else ""), []).append(hello.t - end)
            peak = cloud.take_peak_sessions().get(serial, 0)
            assert peak <= 1, "two sessions at once after outage %d" % i
    finally:
        end_outage(cloud, "tcp")
    assert max(delays) <= BACKOFF_CAP + C.CONNECT_TIMEOUT
    printer.wait_polar(lambda s: s["connected"], what="online at the end")
    assert_klippy_clean(printer, log_from)
    figures = distribution(delays)
    figures["by_kind"] = {k: distribution(v) for k, v in sorted(kinds.items())}
    figures["outage_seconds"] = list(OUTAGE_SECONDS)
    report("outages", figures)


# --- hostile packets -----------------------------------------------------------

SURROGATES = "FUZZ_\udfff\ud800"
CLOUD_EVENTS = ["print", "pause", "resume", "cancel", "command", "temperature",
                "jogPrinter", "customCommand", "connectPrinter", "update",
                "getUrlResponse", "capabilitiesResponse", "unregisterResponse",
                "registerResponse", "helloResponse", "welcome",
                "sendNextPrintResponse"]
# names nobody may dispatch: internal methods, the catch-all, library ones
FOREIGN_EVENTS = ["*", "snapshot", "socket_event", "_on_welcome", "publish",
                  "emit", "forget_serial", "reconnect", "_drop", "__init__",
                  "run_on_printer", "_connect", "disconnect", "connect",
                  "message", "keyPair", "stop", SURROGATES, "", "x" * 300]


def junk_value(rng, depth=0):
    """Anything JSON can carry, mostly wrong for whatever field it lands in."""
    pick = rng.randrange(14)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([0, -1, 1, 2 ** 63, -2 ** 63, 1e308, -1e308, 0.5])
    if pick == 2:
        return rng.choice([True, False])
    if pick == 3:
        return SURROGATES
    if pick == 4:
        return rng.choice(["", " ", "\x00\x01\x1b[2J", "\n\n", "M112",
                           "../../etc/passwd", "\u202eabc", "\ud800"])
    if pick == 5 and rng.random() < 0.02:
        return "A" * (1 << 20)       # 1 MB string (kept rare: bandwidth)
    if pick == 6 and depth < 3:
        return [junk_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 7 and depth < 3:
        return {rng.choice(["serialNumber", "jobId", "command", "x", ""]):
                junk_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if pick == 8:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(20))
    return rng.choice(["x", "1", "null", "{}", "[]", "FUZZ_CMD", "G4 P0"])


FIELDS = ["command", "jobId", "gcodeFile", "jobName", "fileToPrint", "bed",
          "tool0", "tool1", "chamber", "jogPrinter", "status", "type", "url",
          "fields", "expires", "challenge", "message", "capabilities",
          "stlFile", "threemfFile", "maxSize", "reason"]


def junk_serial(rng, serial):
    return rng.choice([serial, serial, serial, WRONG_SERIAL, None, 123,
                       [serial], {"s": serial}, serial + "\x00", "",
                       SURROGATES, "MISSING"])


def hostile_packet(rng, serial):
    """(event, args): a packet to the online printer that must do nothing
    harmful. Never a valid in-range heater target or a working G-code:
    those would be obeyed, as they should be."""
    event = rng.choice(CLOUD_EVENTS + FOREIGN_EVENTS
                       if rng.random() < 0.3 else CLOUD_EVENTS)
    shape = rng.randrange(6)
    if shape == 0:
        return event, (junk_value(rng),)
    if shape == 1:
        return event, tuple(junk_value(rng) for _ in range(rng.randrange(4)))
    data = {f: junk_value(rng) for f in rng.sample(FIELDS, rng.randrange(6))}
    s = junk_serial(rng, serial)
    if s != "MISSING":
        data["serialNumber"] = s
    if shape == 3:   # lone surrogates where text is shown or run
        data.update(command=SURROGATES, jobName=SURROGATES,
                    command_name=SURROGATES)
        if event == "customCommand":
            data["command"] = [SURROGATES]
    if shape == 4:
        return event, ([data],)      # a list for an object
    if event in ("temperature",):
        for k in ("bed", "tool0", "tool1", "chamber"):
            if isinstance(data.get(k), (int, float)) \
                    and not isinstance(data[k], bool):
                data[k] = -1000      # out of range: refused whole
    return event, (data,)


def deep(depth):
    return "[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth


def raw_packets(rng, n, serial):
    """Socket.IO text packets json.dumps could not make, or odd framing;
    nesting just under Python's recursion limit reaches our handlers."""
    deep_list, deep_obj = deep(1000)
    texts = ['2["print",%s]' % deep_list, '2["temperature",%s]' % deep_obj,
             '2["command",{"serialNumber":%s}]' % deep_obj,
             '2["print",{bad json', "2", "2[]", "2[1,2]", "2[null]",
             '2[["print"]]', '2/other,["print",{}]', '2["x"',
             '51-["print",{"_placeholder":true,"num":0}]', "6", "7zz", "0{}",
             '2["*",{}]', '2["snapshot"]', '2["socket_event","x","y"]']
    for depth in (100, 500, 900, 980):
        lists, objs = deep(depth)
        for event in ("command", "print", "temperature", "customCommand",
                      "jogPrinter", "getUrlResponse"):
            for field in ("command", "jobName", "bed", "jogPrinter", "url"):
                texts.append('2["%s",{"serialNumber":"%s","%s":%s}]'
                             % (event, serial, field, lists))
            texts.append('2["%s",{"serialNumber":"%s","jobId":%s}]'
                         % (event, serial, objs))
    return [rng.choice(texts) for _ in range(n)]


def canaries(cloud):
    """Packets with a wrong serial: none may be obeyed."""
    url = cloud.serve_file("canary.gcode", b"G28\n")
    return [("temperature", ({"serialNumber": WRONG_SERIAL, "bed": 42,
                              "tool0": 42},)),
            ("print", ({"serialNumber": WRONG_SERIAL, "jobId": "canary",
                        "jobName": "canary", "gcodeFile": url},)),
            ("delete", ({"serialNumber": WRONG_SERIAL},)),
            ("registerResponse", ({"status": "SUCCESS",
                                   "serialNumber": WRONG_SERIAL},))]


def test_hostile_packets_are_harmless(online, printer, cloud):
    serial = online
    rng = random.Random(SEED)
    print("hostile packets: seed %d, %d packets" % (SEED, PACKETS))
    log_from = len(printer.log_text())
    pid = printer.procs["klippy"].pid
    time.sleep(1.)    # let the post-hello work settle before the first RSS
    rss_before = rss_kib(pid)
    canary = canaries(cloud)
    sent = {"events": 0, "raw": 0, "before_hello": 0, "canaries": 0}
    mark = cloud.mark()
    t0 = time.monotonic()
    # 1. before hello: a new connection gets a burst as soon as it is up
    # (no delete without a serial, no helloResponse: both are honoured
    # before hello by design, docs/protocol.md#serial-numbers)
    cloud.disconnect_all(abrupt=True)
    rec = cloud.wait_for("connect", start=mark,
                         timeout=BACKOFF_CAP + C.CONNECT_TIMEOUT)
    early = [p for p in (hostile_packet(rng, serial)
                         for _ in range(PACKETS // 10))
             if p[0] not in ("helloResponse",)]
    sent["before_hello"] = len(early) + len(canary)
    cloud.emit_many(canary + early, sid=rec.sid)
    verified_hello(cloud, mark, 60)
    printer.wait_polar(lambda s: s["connected"], what="online after burst")
    # 2. online: the storm, canaries among it, raw packets among it
    left = PACKETS - len(early)
    chunk = 500
    while left > 0:
        n = min(chunk, left)
        packets = [hostile_packet(rng, serial) for _ in range(n - n // 10)]
        packets[rng.randrange(len(packets)):0] = canary
        cloud.emit_many(packets, serial=serial)
        cloud.emit_raw(raw_packets(rng, n // 10, serial), serial=serial)
        sent["events"] += len(packets) - len(canary)
        sent["canaries"] += len(canary)
        sent["raw"] += n // 10
        left -= n
    storm_seconds = time.monotonic() - t0
    statuses = len([r for r in cloud.events[mark:] if r.event == "status"])
    # still online: a status arrives after the storm
    after = cloud.mark()
    cloud.wait_for("status", start=after, timeout=30,
                   pred=lambda d: d.get("serialNumber") == serial)
    st = printer.wait_polar(lambda s: s["connected"], what="still online")
    assert st["serial"] == serial and st["registered"]
    assert_klippy_clean(printer, log_from)
    # canaries never obeyed
    assert printer.klippy.query(heater_bed=["target"])["heater_bed"][
        "target"] != 42
    assert printer.klippy.query(extruder=["target"])["extruder"][
        "target"] != 42
    assert not [n for n, _h in cloud.file_requests if n == "canary.gcode"]
    assert not cloud.records("job", serial=WRONG_SERIAL)
    assert not [r for r in cloud.events[mark:]
                if isinstance(r.data, dict) and r.data.get("jobId") ==
                "canary"]
    assert printer.print_state() not in ("printing", "paused")
    time.sleep(1.)
    rss_after = rss_kib(pid)
    growth_mib = (rss_after - rss_before) / 1024.
    assert growth_mib < 10, "Klippy RSS grew %.1f MiB" % growth_mib
    # it still obeys a good command afterwards
    still_obeys_a_good_command(printer, cloud, serial)
    report("hostile", dict(sent, total=sum(sent.values()),
                           storm_seconds=round(storm_seconds, 1),
                           statuses_during_storm=statuses,
                           rss_before_mib=round(rss_before / 1024., 1),
                           rss_after_mib=round(rss_after / 1024., 1),
                           rss_growth_mib=round(growth_mib, 2)))


# --- handshake faults ------------------------------------------------------------

HANDSHAKE_FAULTS = {
    # name: (knob, faulty value)
    "welcome never sent": ("send_welcome", False),
    "welcome a string": ("welcome_data", "challenge-as-a-string"),
    "welcome a list": ("welcome_data", [{"challenge": "x" * 32}]),
    "helloResponse never sent": ("hello_response", None),
}


def handshake_faults(cloud, serial_now, online_now):
    """Each fault for one connection and its retries; then the cloud
    behaves and the module must be back by itself. Returns seconds from
    'the cloud behaves' to the first status."""
    figures = {}
    for name, (knob, value) in HANDSHAKE_FAULTS.items():
        serial = serial_now()
        mark = cloud.mark()
        setattr(cloud, knob, value)
        cloud.disconnect_all(abrupt=True)
        cloud.wait_for("connect", start=mark,
                       timeout=BACKOFF_CAP + C.CONNECT_TIMEOUT)
        if knob == "hello_response":
            cloud.wait_for("hello", start=mark, timeout=30)
        # the faulty connection is stuck now; the cloud behaves again, and
        # only the module's own watchdog can get it out
        reset_cloud(cloud)
        behaves = time.monotonic()
        after = cloud.mark()
        rec = cloud.wait_for(
            "status", start=after,
            timeout=C.HANDSHAKE_TIMEOUT + BACKOFF_CAP + C.CONNECT_TIMEOUT,
            pred=lambda d: d.get("serialNumber") == serial)
        online_now()
        figures[name] = round(rec.t - behaves, 1)
        assert serial_now() == serial
    return figures


def late_register_response(cloud, register, serial_now, online_now, serial):
    """registerResponse after the connector gave up: the registration
    failed, the late answer registers nothing, a retry works, and a stray
    registerResponse while online changes nothing."""
    cloud.register_delay = R.ANSWER_TIMEOUT + 0.5
    mark = cloud.mark()
    result = register()
    assert "no answer" in result.get("error", ""), result
    cloud.wait_for("late registerResponse", start=mark,
                   timeout=R.ANSWER_TIMEOUT + 10)
    time.sleep(1.)
    assert serial_now() is None
    assert not [r for r in cloud.events[mark:] if r.event == "hello"]
    cloud.register_delay = 0.
    result = register()
    assert result.get("status") == "registered", result
    online_now()
    cloud.emit("registerResponse", {"status": "SUCCESS",
                                    "serialNumber": WRONG_SERIAL},
               serial=result["serial"])
    time.sleep(1.)
    assert serial_now() == result["serial"]


def test_handshake_faults_connector(fresh_printer, conn, cloud):
    """Every handshake fault against the connector with short watchdogs
    (2 s) and backoff (0.2-1 s): the code Klippy runs, in seconds instead
    of minutes."""
    conn.backoff = Backoff(0.2, 1.)
    serial = TC.online(conn, cloud)
    info = lambda: conn.host_.info
    figures = handshake_faults(
        cloud, lambda: info().get("serial"),
        lambda: TC.wait(lambda: info().get("connected"), 30, "online"))
    conn.request_unregister(lambda r: None, force=True)
    TC.wait(lambda: not info().get("registered"), 10, "unregistered")
    late_register_response(
        cloud, lambda: TC.register(conn), lambda: info().get("serial"),
        lambda: TC.wait(lambda: info().get("connected"), 30, "online"),
        serial)
    report("handshake_connector", dict(figures, handshake_timeout=2.))


@pytest.mark.skipif(not FULL, reason="30 s watchdogs: POLAR_CAMPAIGN=full")
def test_handshake_faults_klippy(online, printer, cloud):
    """The same faults with real Klippy and the real timeouts."""
    log_from = len(printer.log_text())
    polar = printer.polar_status
    figures = handshake_faults(
        cloud, lambda: polar()["serial"],
        lambda: printer.wait_polar(lambda s: s["connected"], timeout=60))
    forget_registration(printer)

    def register():
        status, body = printer.http(
            "POST", "/server/polar/register", {"email": EMAIL, "pin": PIN},
            timeout=R.REGISTER_TIMEOUT + 30)
        return body.get("result") or {"error": str(body.get("error"))}
    late_register_response(
        cloud, register, lambda: polar()["serial"],
        lambda: printer.wait_polar(lambda s: s["connected"], timeout=60),
        None)
    assert_klippy_clean(printer, log_from)
    report("handshake_klippy", dict(figures,
                                    handshake_timeout=C.HANDSHAKE_TIMEOUT))


# --- logs during a long outage -------------------------------------------------

def test_log_stays_small_during_a_refused_outage(online, printer, cloud):
    """The cloud refuses connections (TCP, then HTTP 503) for a window:
    klippy.log grows < 100 kB an hour, each repeated error logged once."""
    begin_outage(cloud, "tcp")
    try:
        time.sleep(1.)
        size0 = os.path.getsize(printer.klippy_log)
        t0 = time.monotonic()
        time.sleep(LOG_WINDOW / 2)
        end_outage(cloud, "tcp")
        begin_outage(cloud, "503")
        time.sleep(LOG_WINDOW / 2)
        grown = os.path.getsize(printer.klippy_log) - size0
        seconds = time.monotonic() - t0
    finally:
        end_outage(cloud, "503")
    with open(printer.klippy_log, errors="replace") as f:
        f.seek(size0)
        window = f.read(grown)
    per_hour = grown / seconds * 3600.
    printer.wait_polar(lambda s: s["connected"], timeout=BACKOFF_CAP + 15,
                       what="online after the outage")
    assert window.count("cannot reach Polar Cloud") <= 2, window
    assert per_hour < 100e3, window
    tail = printer.log_text()[-4000:]
    assert "more times)" in tail, tail
    report("logs", {"window_seconds": round(seconds, 1), "bytes": grown,
                    "bytes_per_hour": int(per_hour),
                    "polar_lines": window.count("polar_cloud:")})


# --- TLS -------------------------------------------------------------------------

def test_untrusted_certificate_is_named_and_a_private_ca_works(
        tmp_path, installed):
    """An https cloud whose certificate is not trusted: no register or
    hello reaches it, and the owner is told it is the certificate. With
    that certificate in SSL_CERT_FILE (the README's advice) it connects."""
    trusted = self_signed(str(tmp_path), "trusted")
    untrusted = self_signed(str(tmp_path), "untrusted")
    tls = PolarEmulator(ssl_context=server_context(*untrusted))
    tls.start()
    tls.add_account(EMAIL, PIN)
    try:
        with PrinterHarness(tls.url, env={"SSL_CERT_FILE": trusted[0]}) as h:
            status, body = h.http("POST", "/server/polar/register",
                                  {"email": EMAIL, "pin": PIN}, timeout=120)
            assert status != 200, body
            assert "TLS certificate not trusted" in json.dumps(body), body
            assert "self-signed certificate" in json.dumps(body), body
            assert not tls.records("register")
            # the cloud with a certificate from the private CA: connects
            tls.stop()
            tls.ssl_context = server_context(*trusted)
            tls.start()
            serial = go_online(h, tls)
            assert verified_hello(tls, 0, 10).serial == serial
            # and a registered printer refuses the untrusted one again
            tls.stop()
            tls.ssl_context = server_context(*untrusted)
            mark = tls.mark()
            tls.start()
            st = h.wait_polar(
                lambda s: "TLS certificate" in (s["last_error"] or ""),
                timeout=BACKOFF_CAP + 15, what="a certificate error")
            assert not st["connected"]
            shown = h.http_get("/server/polar/status")
            assert "TLS certificate not trusted" in shown["last_error"]
            console = "\n".join(h.gcode_output("POLAR_STATUS"))
            assert "TLS certificate not trusted" in console, console
            assert not [r for r in tls.events[mark:] if r.event == "hello"]
            log = h.log_text()
            assert "Traceback" not in log
    finally:
        tls.close()
