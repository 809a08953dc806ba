#!/usr/bin/python3
"""Posts COUNT messages through the broker, as a standard client would, and
prints the ones the cluster acknowledged as one JSON list. A request that
times out (a server being killed under it) is sent again on a fresh socket,
until DEADLINE_S; a post is counted only once its reply says OK.

Usage: posts.py BROKER_ENDPOINT USER CHANNEL PREFIX COUNT [DEADLINE_S]
"""
import json
import sys
import time

import msgpack
import zmq

broker, user, channel, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
deadline = time.time() + (float(sys.argv[6]) if len(sys.argv) > 6 else 60.0)
ctx = zmq.Context()
clock = 0


def socket():
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 2000)
    s.connect(broker)
    return s


req = socket()


def call(service, data):
    """One request, sent again on a fresh socket after a timeout."""
    global clock, req
    while time.time() < deadline:
        clock += 1
        body = dict(data, timestamp=time.time(), clock=clock)
        req.send(msgpack.packb({"service": service, "data": body}, use_bin_type=True))
        try:
            reply = msgpack.unpackb(req.recv(), raw=False)
        except zmq.Again:
            req.close()
            req = socket()
            continue
        clock = max(clock, reply.get("data", {}).get("clock", 0)) + 1
        return reply.get("data", {})
    return None


acked = []
refused = []
login = call("login", {"user": user})
if login is None or login.get("status") != "sucesso":
    print(json.dumps({"error": f"login refused: {login}"}))
    sys.exit(1)
created = call("channel", {"channel": channel})
for i in range(count):
    message = f"{prefix} {i}"
    r = call("publish", {"user": user, "channel": channel, "message": message})
    if r is not None and r.get("status") == "OK":
        acked.append(message)
    else:
        refused.append({"message": message, "reply": r})
    time.sleep(0.02)
print(json.dumps({"acked": acked, "refused": refused}))
