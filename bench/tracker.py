#!/usr/bin/env python3
"""A tiny BitTorrent HTTP tracker for benchmarks on loopback (stdlib only).

    python3 bench/tracker.py [--host 127.0.0.1] [--port 6969] [--interval 5]

GET /announce   BEP 3 announce with a BEP 23 compact peer list ("peers"): every peer
                seen for that info_hash except the one asking. `event=stopped` drops
                the peer. The peer's address is the connection's source address
                (the `ip` parameter is ignored), so only peers that reach the tracker
                over loopback are ever handed out.
GET /status     JSON for scripts: {info_hash_hex: {"seeders": N, "leechers": N}}.

It refuses to bind anything but a loopback address: it exists for local benchmarks.
It keeps everything in memory and logs one line per announce on stderr.
"""

import argparse
import ipaddress
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_to_bytes

PEER_TTL = 600.0  # seconds a peer stays listed without announcing again

_lock = threading.Lock()
# info_hash (20 bytes) -> {(ip, port): {"left": int, "seen": float}}
_swarms = {}


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def parse_query(raw_query):
    """Split a query string into {name: bytes}; info_hash and peer_id are raw bytes."""
    params = {}
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        params[name] = unquote_to_bytes(value.replace("+", " "))
    return params


class Handler(BaseHTTPRequestHandler):
    server_version = "bench-tracker/1"
    interval = 5

    def log_message(self, fmt, *args):  # quieter than the default: announces are logged below
        pass

    def _reply(self, body, content_type="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _failure(self, reason):
        self._reply(bencode({"failure reason": reason}))

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/status":
            return self._status()
        if path != "/announce":
            self.send_error(404)
            return
        params = parse_query(query)
        info_hash = params.get("info_hash", b"")
        if len(info_hash) != 20:
            return self._failure("info_hash must be 20 bytes")
        try:
            port = int(params.get("port", b"0"))
            left = int(params.get("left", b"0"))
        except ValueError:
            return self._failure("bad port or left")
        if not 0 < port < 65536:
            return self._failure("bad port")
        event = params.get("event", b"").decode(errors="replace")
        ip = self.client_address[0]
        me = (ip, port)
        now = time.monotonic()
        with _lock:
            swarm = _swarms.setdefault(info_hash, {})
            for key in [k for k, v in swarm.items() if now - v["seen"] > PEER_TTL]:
                del swarm[key]
            if event == "stopped":
                swarm.pop(me, None)
            else:
                swarm[me] = {"left": left, "seen": now}
            others = [k for k in swarm if k != me]
            seeders = sum(1 for v in swarm.values() if v["left"] == 0)
            leechers = len(swarm) - seeders
        compact = b""
        for peer_ip, peer_port in others:
            try:
                compact += socket.inet_aton(peer_ip) + peer_port.to_bytes(2, "big")
            except OSError:
                continue  # not IPv4; this tracker hands out IPv4 only
        sys.stderr.write(
            f"{time.strftime('%H:%M:%S')} announce {info_hash.hex()} {ip}:{port} "
            f"event={event or '-'} left={left} -> {len(others)} peers\n"
        )
        sys.stderr.flush()
        self._reply(
            bencode(
                {
                    "interval": self.interval,
                    "min interval": 1,
                    "complete": seeders,
                    "incomplete": leechers,
                    "peers": compact,
                }
            )
        )

    def _status(self):
        with _lock:
            status = {
                h.hex(): {
                    "seeders": sum(1 for v in s.values() if v["left"] == 0),
                    "leechers": sum(1 for v in s.values() if v["left"] != 0),
                }
                for h, s in _swarms.items()
            }
        self._reply(json.dumps(status).encode(), "application/json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6969)
    parser.add_argument("--interval", type=int, default=5, help="announce interval, seconds")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error("--host must be a loopback address")
    Handler.interval = args.interval
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"tracker on http://{args.host}:{args.port}/announce\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
