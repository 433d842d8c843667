"""llhttp (through Python's httptools) as an independent HTTP/1.1 request
parser for tests/it/differential.rs.

Reads one case per line on stdin, as JSON: {"id": N, "data": BASE64}, where
the data is the case's bytes followed by a well-formed sentinel request for
/sentinel. Feeds each case to a fresh httptools.HttpRequestParser with its
default (strict) settings, as a server reading the whole stream would, and
writes one JSON line per case on stdout:

  {"id": N, "outcome": "accept" | "refuse" | "incomplete",
   "body": BASE64 or null, "sentinel": bool, "detail": str}

- "accept": the first message completed; "body" is its body as the parser
  framed it.
- "refuse": the parser reported an error before the first message completed.
- "incomplete": the bytes ran out inside the first message.
- "sentinel": a later `GET /sentinel` completed, with every message
  before it kept alive (a server would have answered it on this
  connection).
"""

import base64
import json
import sys

try:
    import httptools
except ImportError:
    sys.stderr.write(
        "httptools is not installed in the project's .venv: "
        "run scripts/setup-test-deps.sh\n"
    )
    sys.exit(3)


class Messages:
    """httptools callbacks recording each message's target, body and
    persistence."""

    def __init__(self):
        self.parser = None
        self.done = []
        self.current = None

    def on_message_begin(self):
        self.current = {"url": b"", "body": bytearray(), "keep_alive": False, "method": b""}

    def on_url(self, url):
        self.current["url"] += url

    def on_headers_complete(self):
        self.current["method"] = self.parser.get_method()

    def on_body(self, body):
        self.current["body"] += body

    def on_message_complete(self):
        self.current["keep_alive"] = bool(self.parser.should_keep_alive())
        self.done.append(self.current)
        self.current = None


def observe(data):
    messages = Messages()
    parser = httptools.HttpRequestParser(messages)
    messages.parser = parser
    detail = ""
    error = False
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        detail = "upgrade"
        error = True
    except httptools.HttpParserError as e:
        detail = "%s: %s" % (type(e).__name__, e)
        error = True
    if not messages.done:
        outcome = "refuse" if error else "incomplete"
        return {"outcome": outcome, "body": None, "sentinel": False, "detail": detail}
    first = messages.done[0]
    sentinel = False
    for previous, message in zip(messages.done, messages.done[1:]):
        if not previous["keep_alive"]:
            break
        if message["method"] == b"GET" and message["url"] == b"/sentinel":
            sentinel = True
            break
    return {
        "outcome": "accept",
        "body": base64.b64encode(bytes(first["body"])).decode(),
        "sentinel": sentinel,
        "detail": detail,
    }


def main():
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case = json.loads(line)
        result = observe(base64.b64decode(case["data"]))
        result["id"] = case["id"]
        out.write(json.dumps(result))
        out.write("\n")
    out.flush()


if __name__ == "__main__":
    main()
