#!/usr/bin/env python3
"""A client of catalogue's HTTP API written with Python's standard library
only, as any team could write it from docs/HTTP.md. It registers a service
with a lease over the node's API socket, watches over TCP with Server-Sent
Events, resumes after its connection is killed, renews, lets a lease expire
and revokes one, and checks every event. Exit status 0 when all held; each
step prints one line.

Usage: api_client.py HOST:PORT SOCKET
"""

import http.client
import json
import socket
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX socket (what curl --unix-socket does)."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock_path, method, target, body=None):
    conn = UnixHTTPConnection(sock_path)
    payload = json.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if payload else {}
    conn.request(method, target, body=payload, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data else None)


class Watch:
    """One SSE stream over TCP."""

    def __init__(self, addr, pattern, last_id=None):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        self.conn.request("GET", "/v1/watch?match=" + pattern, headers=headers)
        # Held apart: the stream answers `Connection: close`, after which
        # http.client hands the socket to the response alone.
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        check(self.resp.status == 200, f"watch answered {self.resp.status}")

    def next(self):
        kind, ident, data = None, None, ""
        while True:
            line = self.resp.readline()
            check(line != b"", "the stream ended")
            line = line.decode().rstrip("\n")
            if line == "":
                if kind or data:
                    return kind or "message", ident, json.loads(data) if data else None
                continue
            if line.startswith(":") or line.startswith("retry:"):
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                kind = value
            elif field == "id":
                ident = value
            elif field == "data":
                data += value

    def until_snapshot_end(self):
        events = []
        while True:
            event = self.next()
            events.append(event)
            if event[0] == "snapshot_end":
                return events

    def kill(self):
        # Not a polite close: the socket goes away under the stream.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


def step(text):
    print(f"ok: {text}", flush=True)


def summary(events):
    return [(k, (d or {}).get("uri")) for k, _, d in events]


def main():
    addr, sock_path = sys.argv[1], sys.argv[2]
    pattern = "%5Etcp%3A%2F%2Fpy-"

    status, a = call(sock_path, "PUT", "/v1/services",
                     {"uri": "tcp://py-a:1", "attrs": {"lang": "python"}, "ttl": "2s"})
    check(status == 201, f"lease for py-a: {status} {a}")
    step(f"registered tcp://py-a:1 with lease {a['lease']}")

    watch = Watch(addr, pattern)
    first = watch.until_snapshot_end()
    check(summary(first) == [("added", "tcp://py-a:1"), ("snapshot_end", None)],
          f"snapshot: {summary(first)}")
    check(first[0][2]["attrs"] == {"lang": "python"}, "attributes")
    last_id = first[-1][1]
    check(last_id and ":" in last_id, f"snapshot_end id {last_id}")
    step(f"watched the snapshot, position {last_id}")

    status, renewed = call(sock_path, "PUT", f"/v1/leases/{a['lease']}")
    check(status == 200, f"renew: {status} {renewed}")
    step("renewed the lease")

    watch.kill()
    step("killed the watch connection")
    # Not renewed again: the lease runs out while nobody watches.
    deadline = time.time() + 10
    while True:
        status, page = call(sock_path, "GET", "/v1/services?match=" + pattern)
        check(status == 200, f"list: {status}")
        if not page["services"]:
            break
        check(time.time() < deadline, "the lease did not expire")
        time.sleep(0.2)
    step("the lease expired")

    watch = Watch(addr, pattern, last_id)
    missed = watch.until_snapshot_end()
    check(summary(missed) == [("deleted", "tcp://py-a:1"), ("snapshot_end", None)],
          f"resumed: {summary(missed)}")
    check(missed[-1][2]["resumed"] is True, "resumed flag")
    step("resumed with Last-Event-ID: exactly the expiry")

    status, b = call(sock_path, "PUT", "/v1/services", {"uri": "tcp://py-b:1", "ttl": "1h"})
    check(status == 201, f"lease for py-b: {status} {b}")
    kind, ident, data = watch.next()
    check((kind, data["uri"], data["snapshot"]) == ("added", "tcp://py-b:1", False),
          f"live add: {kind} {data}")
    check(ident is not None, "a live change has an id")
    status, _ = call(sock_path, "DELETE", f"/v1/leases/{b['lease']}")
    check(status == 200, f"revoke: {status}")
    kind, ident, data = watch.next()
    check((kind, data["uri"]) == ("deleted", "tcp://py-b:1"), f"live delete: {kind} {data}")
    step("saw a leased service come and its revocation go, live")

    status, err = call(sock_path, "PUT", f"/v1/leases/{b['lease']}")
    check(status == 404 and err["error"]["code"] == "no_lease", f"renew revoked: {status} {err}")
    step("a revoked lease is gone")
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
