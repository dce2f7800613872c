"""Test helpers for LIBER: an in-process OpenAI-compatible chat server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class ChatServer:
    """A tiny chat-completions server. Modes: ok (echo), rules (the rule stand-in answers, so the JSON
    fields are valid), flaky (first request 503), slow (1 s per answer), malformed (no choices),
    notfound (HTTP 404), nojson (a chatty answer without fields). `delay` slows every answer."""

    def __init__(self, mode: str = "ok", delay: float = 0.0):
        from tenfold.liber.llm import RuleSummarizer

        self.mode, self.delay, self.requests, self.bodies = mode, delay, 0, []
        rules = RuleSummarizer()
        outer = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                with lock:
                    outer.requests += 1
                    n = outer.requests
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                time.sleep(outer.delay)
                if outer.mode == "flaky" and n == 1:
                    return self._send(503, b"{}")
                if outer.mode == "slow":
                    time.sleep(1.0)
                if outer.mode == "malformed":
                    return self._send(200, b'{"choices": []}')
                if outer.mode == "notfound":
                    return self._send(404, b'{"error": "no such model"}')
                prompt = body["messages"][-1]["content"]
                text = {"rules": lambda: rules.respond(prompt), "nojson": lambda: "I think the user likes films."
                        }.get(outer.mode, lambda: "summary of " + prompt[-20:])()
                reply = {"choices": [{"message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}}
                self._send(200, json.dumps(reply).encode())

            def _send(self, code, data):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    srv = ChatServer(*request.param) if isinstance(request.param, tuple) else ChatServer(request.param)
    yield srv
    srv.stop()


@pytest.fixture
def make_server():
    """A factory of ChatServers, all stopped at the end of the test."""
    made = []

    def make(mode: str = "ok", delay: float = 0.0) -> ChatServer:
        made.append(ChatServer(mode, delay))
        return made[-1]

    yield make
    for srv in made:
        srv.stop()
