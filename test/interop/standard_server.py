#!/usr/bin/python3
"""A minimal standard server written from PROTOCOL.md alone, not from bulletin's code.

It does what the seeds' servers do and nothing more: a REP socket connected to
the broker's back end, a PUB socket connected to the proxy's front end,
msgpack maps, the client services login, users, channel, channels, publish,
message, a Lamport clock, timestamps as float seconds (time.time()). No
replication, no history, no request ids: extra fields are ignored. It prints
one JSON line per request it served.

Usage: standard_server.py BROKER_BACKEND PROXY_FRONTEND
"""
import json
import sys
import time

import msgpack
import zmq

broker, proxy = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
rep = ctx.socket(zmq.REP)
rep.setsockopt(zmq.LINGER, 0)
rep.connect(broker)
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.LINGER, 0)
pub.connect(proxy)

users, channels = set(), set()
clock = 0


def stamp(data):
    global clock
    clock += 1
    data["timestamp"] = time.time()
    data["clock"] = clock
    return data


print(json.dumps({"ready": True}), flush=True)
while True:
    try:
        msg = msgpack.unpackb(rep.recv(), raw=False)
    except Exception as e:  # noqa: BLE001 - any garbage gets an error reply
        rep.send(msgpack.packb({"service": "error", "data": stamp({"status": "erro", "description": str(e)})}))
        continue
    service = msg.get("service") or msg.get("opcao")
    data = msg.get("data") or {}
    received = data.get("clock", msg.get("clock", 0))
    if isinstance(received, int) and received > clock:
        clock = received
    if service == "login":
        users.add(data["user"])
        out = {"status": "sucesso"}
    elif service == "users":
        out = {"status": "OK", "users": sorted(users)}
    elif service == "channel":
        channels.add(data["channel"])
        out = {"status": "sucesso"}
    elif service == "channels":
        out = {"status": "OK", "channels": sorted(channels)}
    elif service == "publish":
        if data.get("channel") not in channels:
            out = {"status": "erro", "message": "no such channel"}
        else:
            body = stamp({"user": data["user"], "channel": data["channel"], "message": data["message"]})
            pub.send_multipart([data["channel"].encode(), msgpack.packb({"service": "publish", "data": body})])
            out = {"status": "OK"}
    elif service == "message":
        if data.get("dst") not in users:
            out = {"status": "erro", "message": "no such user"}
        else:
            body = stamp({"src": data["src"], "dst": data["dst"], "message": data["message"]})
            pub.send_multipart([data["dst"].encode(), msgpack.packb({"service": "message", "data": body})])
            out = {"status": "OK"}
    else:
        out = {"status": "erro", "description": "unknown service %r" % (service,)}
    rep.send(msgpack.packb({"service": service, "data": stamp(out)}))
    print(json.dumps({"served": service, "status": out["status"]}), flush=True)
