#!/usr/bin/env python3
"""Mock OpenAI-compatible upstream for kura's egress tests, on loopback only.

Usage: mock_upstream.py RAW_FILE BODIES_FILE
Prints its port on stdout. Appends every byte it reads from a client to RAW_FILE and every
request body (one JSON per line) to BODIES_FILE. POST .../chat/completions answers
"Echo: " + the user messages' contents joined by "\\n", as one JSON answer or, with
"stream": true, as SSE deltas of 1 to 5 characters (so placeholders are split across events).
Model "flaky" fails with 503 on every other request; model "huge" answers 3 MB."""
import http.server
import json
import random
import sys
import threading

RAW, BODIES = sys.argv[1], sys.argv[2]
lock = threading.Lock()
state = {'flaky': 0}


class Tee:
    def __init__(self, f):
        self.f = f

    def _rec(self, b):
        if b:
            with lock, open(RAW, 'ab') as o:
                o.write(b)
        return b

    def readline(self, *a):
        return self._rec(self.f.readline(*a))

    def read(self, *a):
        return self._rec(self.f.read(*a))

    def close(self):
        self.f.close()

    def __getattr__(self, k):
        return getattr(self.f, k)


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def setup(self):
        super().setup()
        self.rfile = Tee(self.rfile)

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype='application/json'):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        with lock, open(BODIES, 'ab') as o:
            o.write(body.replace(b'\n', b' ') + b'\n')
        if not self.path.endswith('/chat/completions'):
            return self.send(404, b'{"error":"not found"}')
        try:
            req = json.loads(body)
        except ValueError:
            return self.send(400, b'{"error":"bad json"}')
        model = req.get('model', '')
        if model == 'flaky':
            with lock:
                state['flaky'] += 1
                fail = state['flaky'] % 2 == 1
            if fail:
                return self.send(503, b'{"error":"busy"}')
        if model == 'huge':
            return self.send(200, b'{"x":"' + b'a' * (3 << 20) + b'"}')
        text = 'Echo: ' + '\n'.join(m.get('content', '') for m in req.get('messages', [])
                                    if m.get('role') == 'user')
        if not req.get('stream'):
            ans = {'id': 'x', 'object': 'chat.completion', 'model': model,
                   'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': text},
                                'finish_reason': 'stop'}]}
            return self.send(200, json.dumps(ans, ensure_ascii=False).encode())
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Connection', 'close')
        self.end_headers()
        rnd = random.Random(len(text))
        i = 0
        while i < len(text):
            k = rnd.randint(1, 5)
            ev = {'choices': [{'index': 0, 'delta': {'content': text[i:i + k]}}]}
            self.wfile.write(b'data: ' + json.dumps(ev, ensure_ascii=False).encode() + b'\n\n')
            self.wfile.flush()
            i += k
        self.wfile.write(b'data: [DONE]\n\n')
        self.wfile.flush()
        self.close_connection = True


class S(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that hang up on purpose (size limit test)


srv = S(('127.0.0.1', 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
