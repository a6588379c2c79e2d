#!/usr/bin/python3
"""A small authoritative DNS server for the tests (t/lib/Llmd/DNS.pm).

It answers A and AAAA queries on 127.0.0.1:PORT (UDP and TCP) from a JSON
zone file that a test rewrites while it runs:

    {"pods.llmd.test.": {"A": ["127.0.0.2", "127.0.0.3"], "AAAA": [],
                         "ttl": 1},
     "broken.llmd.test.": {"servfail": true},
     "slow.llmd.test.": {"A": ["127.0.0.2"], "delay_ms": 300}}

The file is read again when its mtime, size or inode changes (checked at
every query), so the next query after a rewrite sees the new zone.  An
unknown name is NXDOMAIN; a known name without records of the asked type
(or with "A": []) is NOERROR with no answer; "servfail": true is SERVFAIL;
"delay_ms" delays the answer.  Names match without regard to case or to a
trailing dot.

When it is ready it prints the port on stdout (--port 0 picks a free one).
It exits by itself when its parent process dies or after --max-seconds, so
a test that is killed never leaves it running.  Needs Debian's
python3-dnslib: run it with /usr/bin/python3.
"""

import argparse
import ctypes
import json
import os
import signal
import sys
import threading
import time

from dnslib import AAAA, QTYPE, RCODE, RR, A
from dnslib.server import DNSServer

PR_SET_PDEATHSIG = 1


class Zone:
    """The zone file's contents, read again when the file changes."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.key = None
        self.names = {}

    def lookup(self, name):
        with self.lock:
            self._refresh()
            return self.names.get(name)

    def _refresh(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            log("zone %s: %s (keeping the last zone)" % (self.path, e))
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self.key:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise ValueError("the zone must be a JSON object")
            names = {canonical(k): v for k, v in data.items()
                     if isinstance(v, dict)}
        except (OSError, ValueError) as e:
            log("zone %s: %s (keeping the last zone)" % (self.path, e))
            return
        self.key = key
        self.names = names


class Resolver:
    """Answers from the zone; dnslib calls resolve() in a thread each."""

    def __init__(self, zone, verbose):
        self.zone = zone
        self.verbose = verbose

    def resolve(self, request, handler):
        reply = request.reply(ra=0, aa=1)
        q = request.q
        name = canonical(str(q.qname))
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        entry = self.zone.lookup(name)

        if entry is not None and entry.get("delay_ms"):
            time.sleep(float(entry["delay_ms"]) / 1000.0)

        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif entry.get("servfail"):
            reply.header.rcode = RCODE.SERVFAIL
        elif qtype in ("A", "AAAA"):
            rdata = A if qtype == "A" else AAAA
            try:
                ttl = int(entry.get("ttl", 1))
                for addr in entry.get(qtype) or []:
                    reply.add_answer(RR(q.qname, q.qtype, ttl=ttl,
                                        rdata=rdata(addr)))
            except (TypeError, ValueError, OSError) as e:
                log("zone entry %s: %s" % (name, e))
                reply.rr = []
                reply.header.rcode = RCODE.SERVFAIL

        if self.verbose:
            log("%s %s %s -> %s %s" % (
                handler.protocol, qtype, name,
                RCODE.get(reply.header.rcode),
                " ".join(str(rr.rdata) for rr in reply.rr)))
        return reply


class QuietLogger:
    """dnslib's logger hooks: only errors, on stderr (stdout has the port)."""

    def log_error(self, handler, e):
        log("error from %s: %s" % (handler.client_address, e))

    def __getattr__(self, name):
        return lambda *args: None


def canonical(name):
    return name.lower().rstrip(".") + "."


def log(msg):
    sys.stderr.write("dns-server: %s\n" % msg)
    sys.stderr.flush()


def die_with_parent():
    """Ask the kernel for SIGTERM when the parent dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass        # the ppid watch below still ends the process


def servers(resolver, port, want_tcp):
    """UDP and TCP servers on the same port (port 0: a free one)."""
    for _ in range(20):
        udp = DNSServer(resolver, address="127.0.0.1", port=port,
                        logger=QuietLogger())
        if not want_tcp:
            return [udp]
        chosen = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=chosen,
                            tcp=True, logger=QuietLogger())
            return [udp, tcp]
        except OSError:
            udp.server.server_close()
            if port != 0:
                raise
    raise OSError("no port free for both UDP and TCP")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zone", required=True, help="the JSON zone file")
    ap.add_argument("--port", type=int, default=0,
                    help="port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--no-tcp", action="store_true", help="UDP only")
    ap.add_argument("--max-seconds", type=float, default=600,
                    help="exit after this long (600)")
    ap.add_argument("--verbose", action="store_true",
                    help="log every query on stderr")
    args = ap.parse_args()

    parent = os.getppid()
    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))

    zone = Zone(args.zone)
    zone.lookup(".")        # reads the file now, to report a bad one early
    try:
        srv = servers(Resolver(zone, args.verbose), args.port,
                      not args.no_tcp)
    except OSError as e:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, e))
        return 1
    for s in srv:
        s.start_thread()

    port = srv[0].server.server_address[1]
    print(port, flush=True)
    if args.verbose:
        log("serving %s on 127.0.0.1:%d (%s)" % (
            args.zone, port, "udp" if args.no_tcp else "udp, tcp"))

    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        # the parent died before prctl, or prctl is not there
        if os.getppid() != parent:
            break
        time.sleep(0.2)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
