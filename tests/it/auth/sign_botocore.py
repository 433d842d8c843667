"""Signs requests with botocore's SigV4 signer (what boto3 uses), so the
gateway's verifier is checked against an independent implementation.

stdin: a list of jobs {method, url, headers, body, key, secret, token,
region, service, presign, expires, age_seconds}; stdout: for each job the
{url, headers} to send.
"""
import datetime
import json
import sys

import botocore.auth
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

real_now = botocore.auth.get_current_datetime
out = []
for job in json.load(sys.stdin):
    age = job.get("age_seconds", 0)
    botocore.auth.get_current_datetime = lambda age=age: real_now() - datetime.timedelta(seconds=age)
    req = AWSRequest(
        method=job["method"],
        url=job["url"],
        data=job.get("body", "").encode(),
        headers=job.get("headers", {}),
    )
    creds = Credentials(job["key"], job["secret"], job.get("token"))
    if job.get("presign"):
        SigV4QueryAuth(creds, job["service"], job["region"], expires=job.get("expires", 60)).add_auth(req)
    else:
        SigV4Auth(creds, job["service"], job["region"]).add_auth(req)
    prepared = req.prepare()
    out.append({"url": prepared.url, "headers": dict(prepared.headers.items())})
json.dump(out, sys.stdout)
