#!/usr/bin/env bash
# End-to-end robustness of kura serve: a slow (byte-by-byte) client, oversized bodies, garbage
# on the wire and 1000 simultaneous connections; meanwhile normal requests keep succeeding and
# the server never crashes.
set -u
. "$(dirname "$0")/lib/serve_common.bash"
ulimit -n 4096 2>/dev/null || true
if [ "$(ulimit -n)" -lt 2200 ]; then echo "SKIP: need 2200 open files (ulimit -n)"; exit 77; fi

start_server robust -m "$MODEL" --port 0 --threads 1 --slots 2 --max-body-bytes 65536 \
    --max-connections 4096 --connection-timeout 20 || exit 1

python3 - "$PORT" "$USER" > "$T/robust.txt" 2>&1 <<'EOF'
import json, socket, sys, threading, time, os

port, key = int(sys.argv[1]), sys.argv[2]
results = {}

def http(body, path="/v1/completions", timeout=60):
    """One complete request; returns (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % (path.encode(), key.encode(), len(data)) + data)
    return read_response(s)

def read_response(s):
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        buf += chunk
    s.close()
    if not buf.startswith(b"HTTP/1."):
        return 0, buf
    return int(buf.split(b" ", 2)[1]), buf.split(b"\r\n\r\n", 1)[-1]

NORMAL = {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}

def check(name, cond):
    print(("ok: " if cond else "FAIL: ") + name)
    if not cond:
        results["fail"] = True

# 1. slow client: the body arrives one byte every 10 ms
def slow():
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    data = json.dumps(NORMAL).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (key.encode(), len(data)))
    for b in data:
        s.send(bytes([b]))
        time.sleep(0.01)
    results["slow_done"] = time.time()
    results["slow"] = read_response(s)

t = threading.Thread(target=slow)
t.start()
time.sleep(0.1)
st, body = http(NORMAL)
results["normal_done"] = time.time()
t.join()
check("normal request while a slow client trickles its body: %d" % st, st == 200)
check("it finished before the slow client had sent its body",
      results["normal_done"] < results["slow_done"])
check("slow client answered correctly: %d" % results["slow"][0],
      results["slow"][0] == 200 and
      json.loads(results["slow"][1])["choices"][0]["text"] == json.loads(body)["choices"][0]["text"])

# 2. oversized bodies: announced (413 before the body is read) and chunked
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
          b"Content-Length: 104857600\r\n\r\n" % key.encode())
try:
    s.sendall(b"{" + b" " * 65536)
except OSError:
    pass
st, _ = read_response(s)
check("100 MB Content-Length: 413 without reading it (%d)" % st, st == 413)
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
          b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % key.encode())
try:
    for _ in range(40):
        s.sendall(b"1000\r\n" + b"a" * 4096 + b"\r\n")
    s.sendall(b"0\r\n\r\n")
except OSError:
    pass
st, _ = read_response(s)
check("160 KB chunked body: 413 (%d)" % st, st == 413)

# 3. garbage on the wire
for junk in [b"\x00\xff" * 100 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
             b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
             b"GET /health HTTP/1.1\r\nX: " + b"a" * 200000 + b"\r\n\r\n",
             b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() +
             b"\r\nContent-Length: 10\r\n\r\n{\"pro"]:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        read_response(s)
    except OSError:
        pass
st, _ = http(NORMAL)
check("serving after garbage requests: %d" % st, st == 200)

# 4. 1000 simultaneous connections (idle, half-sent headers, half-sent bodies), then a normal
#    request and a streaming one must still succeed
conns = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if i % 3 == 1:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    elif i % 3 == 2:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"Content-Length: 100\r\n\r\n{\"prompt\":" % key.encode())
    conns.append(s)
t0 = time.time()
st, body = http(NORMAL, timeout=30)
check("normal request with 1000 other connections open: %d in %.2fs" % (st, time.time() - t0),
      st == 200 and json.loads(body)["usage"]["completion_tokens"] == 8)
st, body = http(dict(NORMAL, stream=True), path="/v1/completions", timeout=30)
check("streaming request with 1000 other connections open: %d" % st,
      st == 200 and b"data: [DONE]" in body)
st, body = http({"input": "hello"}, path="/v1/embeddings", timeout=30)
check("embedding with 1000 other connections open: %d" % st, st == 200)
for s in conns:
    s.close()

# 5. clients that disconnect in the middle of a stream free their slots
for _ in range(6):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = json.dumps({"prompt": "Once upon a time", "max_tokens": 100, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Length: %d\r\n\r\n" % (key.encode(), len(data)) + data)
    s.recv(10)
    s.close()
st, _ = http(NORMAL)
check("serving after clients vanished mid-stream: %d" % st, st == 200)

# 6. clients of NON-streamed requests that vanish: the server notices (socket peek per token)
# and cancels instead of generating all max_tokens; the audit records tell (checked below)
for i in range(4):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = json.dumps({"prompt": "Once upon a time", "max_tokens": 480, "temperature": 0,
                       "user": "vanish-%d" % i}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % (key.encode(), len(data)) + data)
    s.close()
st, _ = http(NORMAL)
check("serving after non-streamed clients vanished: %d" % st, st == 200)
sys.exit(1 if results.get("fail") else 0)
EOF
rc=$?
cat "$T/robust.txt"
check "robustness script (rc $rc)" '[ $rc = 0 ]'
check "server still running" 'kill -0 "$PID"'
req GET /health ""
check "healthy at the end" '[ "$CODE" = 200 ]'
stop_server "$PID"; rc=$?
check "clean shutdown (rc $rc)" '[ $rc = 0 ]'
"$KURA" audit verify >/dev/null 2>&1; rc=$?
check "audit log intact (rc $rc)" '[ $rc = 0 ]'
"$KURA" audit show --json --action api.request > "$T/reqs.json"
python3 - "$T/reqs.json" > "$T/vanish.txt" <<'EOF2'
import json, sys
# every vanished request that reached the engine must end cancelled (not stop/length)
n, bad = 0, 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    d = r.get("details", {})
    if str(d.get("user", "")).startswith("vanish-"):
        n += 1
        print("  vanish record: outcome %s finish %s tokens %s" % (r.get("outcome"),
              d.get("finish"), d.get("completion_tokens")), file=sys.stderr)
        bad += r.get("outcome") != "cancelled" or d.get("finish") not in (None, "cancelled")
print(bad)
EOF2
check "vanished non-streamed requests were cancelled ($(cat "$T/vanish.txt") were not)" '[ "$(cat "$T/vanish.txt")" = 0 ]'
sanitizer_check
exit $fail
