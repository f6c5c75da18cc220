# SPDX-License-Identifier: Apache-2.0
"""The demo's application: a small HTTP server that knows nothing of the mesh. It answers
every GET and POST with who it is, the path, the client address it saw and the body."""
import http.server
import json
import sys

NAME, PORT = sys.argv[1], int(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace") if n else ""
        doc = json.dumps({"server": NAME, "path": self.path,
                          "client": self.client_address[0], "body": body}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(doc)))
        self.end_headers()
        self.wfile.write(doc)

    do_GET = do_POST = answer


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024  # socketserver's 5 would leave bursts to TCP retransmissions


server = Server(("0.0.0.0", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
