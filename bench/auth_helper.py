"""Fixtures for bench/authorizers.sh: mints tokens (PyJWT), signs a SigV4
request (botocore), and serves the issuer's JWKS and a Lambda Invoke API
whose `authz` function allows everything. Loopback only.

Usage: auth_helper.py WORKDIR GATEWAY_PORT HELPER_PORT
Writes WORKDIR/{secret,credentials.toml,*.headers,iam.line,iam_up.line}, then serves
until killed.
"""
import http.server
import json
import os
import sys
import threading
import time

import jwt
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives.asymmetric import rsa

work, gw_port, helper_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
issuer = f"http://127.0.0.1:{helper_port}"
secret = "bench-hs256-secret-0123456789abcdef0123456789"
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
pub.update({"kid": "k1", "use": "sig", "alg": "RS256"})
jwks = json.dumps({"keys": [pub]}).encode()
now = int(time.time())


def claims(i=0):
    return {"iss": issuer, "aud": "api", "sub": f"user-{i}", "iat": now, "exp": now + 3600, "scope": "read"}


def write(name, lines):
    with open(os.path.join(work, name), "w") as f:
        f.write("\n".join(lines) + "\n")


rs = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"})
hs = jwt.encode(claims(), secret, algorithm="HS256")
write("secret", [secret])
write("rs.headers", [f"Authorization: Bearer {rs}"])
write("hs.headers", [f"Authorization: Bearer {hs}"])
write("lambda.headers", ["Authorization: bench-caller"])

akid, skey = "AKIDBENCH00000000001", "bench-secret-key-0123456789abcdefghijklm"
write("credentials.toml", ["[[keys]]", f'access_key_id = "{akid}"', f'secret_access_key = "{skey}"',
                           'account_id = "111122223333"'])


def sign_iam():
    """One signed request's headers on one line per signed path (iam.line
    for the `mock` route /iam, iam_up.line for the `http` route /up/iam,
    iam_fn.line for the function route /fn/iam),
    re-signed every minute: the gateway refuses signatures older than five
    minutes."""
    while True:
        for name, path in (("iam.line", "/iam"), ("iam_up.line", "/up/iam"), ("iam_fn.line", "/fn/iam")):
            req = AWSRequest(method="GET", url=f"http://127.0.0.1:{gw_port}{path}")
            SigV4Auth(Credentials(akid, skey), "execute-api", "us-east-1").add_auth(req)
            write(name + ".tmp", ["|".join(f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host")])
            os.replace(os.path.join(work, name + ".tmp"), os.path.join(work, name))
        time.sleep(60)


threading.Thread(target=sign_iam, daemon=True).start()
while not os.path.exists(os.path.join(work, "iam_fn.line")):
    time.sleep(0.05)

POLICY = json.dumps({
    "principalId": "bench",
    "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]},
    "context": {"tier": "gold"},
}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(jwks)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.reply(POLICY)


with open(os.path.join(work, "helper.ready"), "w") as f:
    f.write("ok")
http.server.ThreadingHTTPServer(("127.0.0.1", helper_port), Handler).serve_forever()
