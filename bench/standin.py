#!/usr/bin/env python3
"""A Docker Engine API stand-in for bench/engine.sh and bench/build.sh: it answers the
requests of `docker run --rm IMAGE CMD` (ping, create, attach, wait, start) and of
`docker build -q` (the context is read and dropped) at once and runs nothing, so timing the
docker CLI against it gives the CLI's own share of a `docker run` or a `docker build`.

usage: standin.py SOCKET   (serves until killed)
"""
import json
import os
import socket
import sys
import threading

HEADERS = "Api-Version: 1.43\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: standin\r\n"
CID = "0" * 64


def response(status, body=b"", ctype="application/json"):
    head = f"HTTP/1.1 {status}\r\n{HEADERS}Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def serve(conn):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                conn.close()
                return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        fields = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            # A streamed body (a build context): read chunks up to the last one.
            while True:
                while b"\r\n" not in buf:
                    buf += conn.recv(65536)
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    buf += conn.recv(65536)
                buf = buf[size + 2:]
                if size == 0:
                    break
        else:
            length = int(fields.get("content-length", "0"))
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
        path = target.split("?")[0]
        if path.endswith("/_ping"):
            conn.sendall(response("200 OK", b"" if method == "HEAD" else b"OK", "text/plain"))
        elif path.endswith("/containers/create"):
            conn.sendall(response("201 Created", json.dumps({"Id": CID, "Warnings": []}).encode()))
        elif path.endswith("/attach"):
            # An attach whose container wrote nothing: upgrade, then end of stream.
            conn.sendall(
                f"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                f"Connection: Upgrade\r\nUpgrade: tcp\r\n{HEADERS}\r\n".encode()
            )
            conn.close()
            return
        elif path.endswith("/wait"):
            body = json.dumps({"StatusCode": 0, "Error": None}).encode() + b"\n"
            conn.sendall(
                f"HTTP/1.1 200 OK\r\n{HEADERS}Content-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n".encode()
                + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
            )
        elif path.endswith("/build"):
            iid = "sha256:" + "1" * 64
            body = (json.dumps({"aux": {"ID": iid}}) + "\n" + json.dumps({"stream": iid + "\n"}) + "\n").encode()
            conn.sendall(
                f"HTTP/1.1 200 OK\r\n{HEADERS}Content-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n".encode()
                + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
            )
        elif path.endswith("/start"):
            conn.sendall(response("204 No Content"))
        else:
            conn.sendall(response("404 Not Found", b'{"message":"not served by the stand-in"}'))


def main():
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
