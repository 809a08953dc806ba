#!/usr/bin/python3
"""A client written from PROTOCOL.md alone, not from bulletin's code.

It speaks the standard the way the seeds' Python peers do: a REQ socket to the
broker, a SUB socket to the proxy, msgpack maps, `opcao` instead of `service`
on some requests, the Lamport clock at the top level on some, timestamps as
float seconds (time.time()). It checks every client service and prints one
JSON line per check; the exit status is the number of failed checks.

With a reference endpoint it also speaks the servers' side of the standard:
`list`, `rank` and `heartbeat` to the reference (for a server already there,
so nothing is disturbed), `clock` and `election` to each server's peer port
(addresses from `list`'s `addr`), and the coordinator announcement on topic
`servers` that an election ends with.

Usage: standard_client.py BROKER_ENDPOINT PROXY_ENDPOINT RUN_ID [REFERENCE_ENDPOINT]
"""
import json
import sys
import time

import msgpack
import zmq

broker, proxy, run_id = sys.argv[1], sys.argv[2], sys.argv[3]
reference = sys.argv[4] if len(sys.argv) > 4 else None
ctx = zmq.Context()
req = ctx.socket(zmq.REQ)
req.setsockopt(zmq.LINGER, 0)
req.setsockopt(zmq.RCVTIMEO, 5000)
req.connect(broker)
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.LINGER, 0)
sub.setsockopt(zmq.RCVTIMEO, 5000)
sub.connect(proxy)

clock = 0
failures = 0
me = "py" + run_id
other = "pyother" + run_id
channel = "pychan" + run_id


def check(name, ok, detail=None):
    global failures
    if not ok:
        failures += 1
    print(json.dumps({"check": name, "ok": bool(ok), "detail": detail}), flush=True)


def call(service, data, quirk=None, socket=None):
    """One request. quirk: None (standard), 'opcao', 'toplevel-clock'."""
    global clock
    socket = socket or req
    clock += 1
    body = dict(data)
    body["timestamp"] = time.time()  # float seconds, as Python peers send
    msg = {"data": body}
    if quirk == "opcao":
        msg["opcao"] = service
    else:
        msg["service"] = service
    if quirk == "toplevel-clock":
        msg["clock"] = clock
    else:
        body["clock"] = clock
    socket.send(msgpack.packb(msg, use_bin_type=True))
    reply = msgpack.unpackb(socket.recv(), raw=False)
    received = reply.get("data", {}).get("clock", reply.get("clock", 0))
    clock = max(clock, received) + 1  # the seeds' rule: max + 1
    return reply


def call_at(endpoint, service, data, quirk=None):
    """One request on a fresh REQ socket (reference, or a server's peer port)."""
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(endpoint)
    try:
        return call(service, data, quirk=quirk, socket=s)
    finally:
        s.close()


def eventually(service, data, holds, quirk=None, timeout_s=3.0):
    """Reads are eventually consistent across servers (multi-master, asynchronous
    replication): what was just written through one server may not have reached
    the one the broker picks for the read. Ask again, as a real client would."""
    deadline = time.time() + timeout_s
    while True:
        r = call(service, dict(data), quirk=quirk)
        if holds(r.get("data", {})) or time.time() > deadline:
            return holds(r.get("data", {})), r
        time.sleep(0.05)


def receive(topic, timeout_s=5.0, want=lambda p: True):
    """The first publication on exactly this topic that `want` accepts (in a
    live cluster, bots may post to any channel, ours included)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            t, payload = sub.recv_multipart()
        except zmq.Again:
            break
        if t.decode() == topic:  # exact topic match, not ZeroMQ's prefix match
            p = msgpack.unpackb(payload, raw=False)
            if want(p):
                return p
    return None


try:
    r = call("login", {"user": me}, quirk="opcao")
    check("login (opcao)", r.get("service") == "login" and r["data"].get("status") == "sucesso", r)
    r = call("login", {"user": other}, quirk="toplevel-clock")
    check("login (top-level clock)", r["data"].get("status") == "sucesso", r)
    r = call("login", {"user": "bad name!"})
    check("login with an illegal name is refused", r["data"].get("status") == "erro" and "description" in r["data"], r)

    ok, r = eventually("users", {}, lambda d: me in d.get("users", []) and other in d.get("users", []))
    check("users", ok, r)

    r = call("channel", {"channel": channel})
    check("channel", r["data"].get("status") == "sucesso", r)
    r = call("channel", {"channel": channel})
    check("channel twice is idempotent", r["data"].get("status") == "sucesso", r)
    ok, r = eventually("channels", {}, lambda d: channel in d.get("channels", []), quirk="opcao")
    check("channels", ok, r)

    sub.setsockopt(zmq.SUBSCRIBE, channel.encode())
    sub.setsockopt(zmq.SUBSCRIBE, me.encode())
    time.sleep(0.5)  # the subscription reaching the proxy

    r = call("publish", {"user": me, "channel": channel, "message": "olá from python"})
    check("publish", r["data"].get("status") == "OK", r)
    pub = receive(channel, want=lambda p: isinstance(p, dict) and isinstance(p.get("data"), dict) and p["data"].get("user") == me)
    check("publication on the channel topic", pub is not None and pub["service"] == "publish" and pub["data"]["message"] == "olá from python" and pub["data"]["channel"] == channel and isinstance(pub["data"].get("clock"), int) and isinstance(pub["data"].get("timestamp"), int), pub)

    r = call("publish", {"user": me, "channel": "no-such-channel-" + run_id, "message": "x"})
    check("publish to a missing channel is an error", r["data"].get("status") == "erro" and r["data"].get("message"), r)

    r = call("message", {"src": other, "dst": me, "message": "psst"}, quirk="toplevel-clock")
    check("message", r["data"].get("status") == "OK", r)
    pm = receive(me)
    check("private message on the recipient topic", pm is not None and pm["service"] == "message" and pm["data"]["src"] == other and pm["data"]["message"] == "psst", pm)

    r = call("message", {"src": me, "dst": "ghost" + run_id, "message": "x"})
    check("message to a missing user is an error", r["data"].get("status") == "erro" and r["data"].get("message"), r)

    r = call("history", {"channel": channel})
    msgs = r["data"].get("messages", [])
    # Only our own posts: where bots run (the compose demo) they post to any channel they find, this one too.
    check("history (extension)", r["data"].get("status") == "OK" and [m["message"] for m in msgs if m.get("user") == me] == ["olá from python"], r)

    r = call("nonsense", {})
    check("unknown service is an error", r["data"].get("status") == "erro" and "description" in r["data"], r)

    req.send(b"\xc1 not msgpack")
    r = msgpack.unpackb(req.recv(), raw=False)
    check("malformed msgpack is an error", r["data"].get("status") == "erro", r)

    if reference is not None:
        r = call_at(reference, "list", {}, quirk="opcao")
        servers = r["data"].get("list", [])
        ranks = [e.get("rank") for e in servers]
        check("reference: list", r.get("service") == "list" and len(servers) >= 3 and all(isinstance(e.get("name"), str) and isinstance(e.get("rank"), int) for e in servers) and len(set(ranks)) == len(ranks), r)
        known = servers[0]
        r = call_at(reference, "rank", {"user": known["name"]}, quirk="toplevel-clock")
        check("reference: rank (a registered name keeps its rank)", r["data"].get("rank") == known["rank"], r)
        r = call_at(reference, "heartbeat", {"user": known["name"]})
        check("reference: heartbeat", r.get("service") == "heartbeat" and isinstance(r["data"].get("timestamp"), int) and isinstance(r["data"].get("clock"), int), r)

        for e in servers:
            r = call_at(e["addr"], "clock", {})
            t = r["data"].get("time")
            check("server %s: clock" % e["name"], isinstance(t, int) and abs(t - time.time() * 1000) < 5000, r)

        # An election asked of the highest rank ends with it announced on `servers`.
        sub.setsockopt(zmq.SUBSCRIBE, b"servers")
        time.sleep(0.5)
        top = max(servers, key=lambda e: e["rank"])
        r = call_at(top["addr"], "election", {}, quirk="opcao")
        check("server %s: election" % top["name"], r.get("service") == "election" and r["data"].get("election") == "OK", r)
        announced = None
        deadline = time.time() + 10
        while time.time() < deadline and announced is None:
            a = receive("servers", timeout_s=deadline - time.time())
            if a is not None and a.get("service") == "election" and a["data"].get("coordinator") == top["name"]:
                announced = a
        check("announcement on servers names the highest rank", announced is not None and isinstance(announced["data"].get("clock"), int) and isinstance(announced["data"].get("timestamp"), int), announced)

    check("lamport clock advanced past the server's", clock > 10, clock)
except zmq.Again:
    check("a reply within 5 s", False, "timeout")

sys.exit(failures)
