"""Mints the JWTs the auth tests send, with PyJWT + cryptography: an
implementation independent of the gateway's verifier.

Reads {"issuer": ..., "secret": ...} on stdin; writes JSON with the JWKS to
serve, a second JWKS (after a key rotation) and the named tokens.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

cfg = json.load(sys.stdin)
issuer = cfg["issuer"]
secret = cfg["secret"]
now = int(time.time())

rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec1 = ec.generate_private_key(ec.SECP256R1())


def jwk(key, kid, alg):
    d = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())
                   if alg.startswith(("RS", "PS"))
                   else jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    d.update({"kid": kid, "use": "sig"})
    return d


jwks = {"keys": [jwk(rsa1, "rsa1", "RS256"), jwk(ec1, "ec1", "ES256")]}
jwks_rotated = {"keys": jwks["keys"] + [jwk(rsa2, "rsa2", "RS256")]}


def claims(**over):
    c = {
        "iss": issuer,
        "aud": "api",
        "sub": "user-1",
        "iat": now,
        "exp": now + 3600,
        "scope": "items:read items:write",
        "groups": ["admins", "staff"],
        "tenant": 42,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(c, key, alg, kid):
    return jwt.encode(c, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def raw(header, payload, key_bytes=None):
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    if key_bytes is None:
        return head + "."
    sig = hmac.new(key_bytes, head.encode(), hashlib.sha256).digest()
    return head + "." + b64(sig)


rsa1_pub_pem = rsa1.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
good = sign(claims(), rsa1, "RS256", "rsa1")
head, body, _ = good.split(".")
other_sig = sign(claims(sub="someone-else"), rsa1, "RS256", "rsa1").split(".")[2]

tokens = {
    "rs256": good,
    "rs256_2": sign(claims(sub="user-2"), rsa1, "RS256", "rsa1"),
    "ps256": sign(claims(), rsa1, "PS256", "rsa1"),
    "es256": sign(claims(sub="ec-user"), ec1, "ES256", "ec1"),
    "hs256": jwt.encode(claims(sub="hs-user"), secret, algorithm="HS256"),
    "client_id": sign(claims(aud=None, client_id="api"), rsa1, "RS256", "rsa1"),
    "rotated": sign(claims(sub="rotated"), rsa2, "RS256", "rsa2"),
    "no_scope": sign(claims(scope="other:thing"), rsa1, "RS256", "rsa1"),
    "scp_array": sign(claims(scope=None, scp=["items:read"]), rsa1, "RS256", "rsa1"),
    # Rejects.
    "alg_none": raw({"alg": "none", "typ": "JWT"}, claims()),
    "hs_with_rsa_public_key": raw({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims(), rsa1_pub_pem),
    "expired": sign(claims(iat=now - 7200, exp=now - 3600), rsa1, "RS256", "rsa1"),
    "not_yet_valid": sign(claims(nbf=now + 3600), rsa1, "RS256", "rsa1"),
    "wrong_issuer": sign(claims(iss="https://evil.example"), rsa1, "RS256", "rsa1"),
    "wrong_audience": sign(claims(aud="someone-else"), rsa1, "RS256", "rsa1"),
    "unknown_kid": sign(claims(), stranger, "RS256", "rsa-unknown"),
    "bad_signature": head + "." + body + "." + other_sig,
    "stranger_key": sign(claims(), stranger, "RS256", "rsa1"),
    "no_exp": sign(claims(exp=None), rsa1, "RS256", "rsa1"),
    "future_iat": sign(claims(iat=now + 3600), rsa1, "RS256", "rsa1"),
    "hs_wrong_secret": jwt.encode(claims(), "not-the-secret-at-all-0123456789", algorithm="HS256"),
    "malformed": "not-a.jwt",
}
bogus = [sign(claims(), stranger, "RS256", f"bogus-{i}") for i in range(20)]
json.dump({"jwks": jwks, "jwks_rotated": jwks_rotated, "tokens": tokens, "bogus": bogus}, sys.stdout)
