#!/usr/bin/python3
"""A client written from PROTOCOL.md alone, not from bulletin's code.

It speaks the standard the way the seeds' Python peers do: a REQ socket to the
broker, a SUB socket to the proxy, msgpack maps, `opcao` instead of `service`
on some requests, the Lamport clock at the top level on some, timestamps as
float seconds (time.time()). It checks every client service and prints one
JSON line per check; the exit status is the number of failed checks.

Usage: standard_client.py BROKER_ENDPOINT PROXY_ENDPOINT RUN_ID
"""
import json
import sys
import time

import msgpack
import zmq

broker, proxy, run_id = sys.argv[1], sys.argv[2], sys.argv[3]
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


def call(service, data, quirk=None):
    """One request. quirk: None (standard), 'opcao', 'toplevel-clock'."""
    global clock
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
    req.send(msgpack.packb(msg, use_bin_type=True))
    reply = msgpack.unpackb(req.recv(), raw=False)
    received = reply.get("data", {}).get("clock", reply.get("clock", 0))
    clock = max(clock, received) + 1  # the seeds' rule: max + 1
    return reply


def receive(topic, timeout_s=5.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            t, payload = sub.recv_multipart()
        except zmq.Again:
            break
        if t.decode() == topic:  # exact topic match, not ZeroMQ's prefix match
            return msgpack.unpackb(payload, raw=False)
    return None


try:
    r = call("login", {"user": me}, quirk="opcao")
    check("login (opcao)", r.get("service") == "login" and r["data"].get("status") == "sucesso", r)
    r = call("login", {"user": other}, quirk="toplevel-clock")
    check("login (top-level clock)", r["data"].get("status") == "sucesso", r)
    r = call("login", {"user": "bad name!"})
    check("login with an illegal name is refused", r["data"].get("status") == "erro" and "description" in r["data"], r)

    r = call("users", {})
    check("users", me in r["data"].get("users", []) and other in r["data"].get("users", []), r)

    r = call("channel", {"channel": channel})
    check("channel", r["data"].get("status") == "sucesso", r)
    r = call("channel", {"channel": channel})
    check("channel twice is idempotent", r["data"].get("status") == "sucesso", r)
    time.sleep(0.3)  # replication to the other servers (the broker round-robins)

    r = call("channels", {}, quirk="opcao")
    check("channels", channel in r["data"].get("channels", []), r)

    sub.setsockopt(zmq.SUBSCRIBE, channel.encode())
    sub.setsockopt(zmq.SUBSCRIBE, me.encode())
    time.sleep(0.5)  # the subscription reaching the proxy

    r = call("publish", {"user": me, "channel": channel, "message": "olá from python"})
    check("publish", r["data"].get("status") == "OK", r)
    pub = receive(channel)
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
    check("history (extension)", r["data"].get("status") == "OK" and [m["message"] for m in msgs] == ["olá from python"], r)

    r = call("nonsense", {})
    check("unknown service is an error", r["data"].get("status") == "erro" and "description" in r["data"], r)

    req.send(b"\xc1 not msgpack")
    r = msgpack.unpackb(req.recv(), raw=False)
    check("malformed msgpack is an error", r["data"].get("status") == "erro", r)

    check("lamport clock advanced past the server's", clock > 10, clock)
except zmq.Again:
    check("a reply within 5 s", False, "timeout")

sys.exit(failures)
