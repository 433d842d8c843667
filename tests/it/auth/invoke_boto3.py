"""Calls the gateway's Lambda Invoke API with boto3's `lambda` client.

stdin: a list of calls {endpoint, region, key, secret, function, payload,
skew_seconds}; stdout: for each call {status, payload} or {error_code,
http_status, message} from the ClientError boto3 raised.
"""
import datetime
import json
import sys

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

real_now = botocore.auth.get_current_datetime
out = []
for call in json.load(sys.stdin):
    skew = call.get("skew_seconds", 0)
    # A client whose clock is off by `skew` seconds.
    botocore.auth.get_current_datetime = lambda skew=skew: real_now() + datetime.timedelta(seconds=skew)
    lam = boto3.client(
        "lambda",
        endpoint_url=call["endpoint"],
        region_name=call["region"],
        aws_access_key_id=call["key"],
        aws_secret_access_key=call["secret"],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    try:
        r = lam.invoke(FunctionName=call["function"], Payload=json.dumps(call["payload"]))
        out.append({"status": r["StatusCode"], "payload": json.loads(r["Payload"].read())})
    except ClientError as e:
        out.append({
            "error_code": e.response["Error"]["Code"],
            "http_status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "message": e.response["Error"]["Message"],
        })
json.dump(out, sys.stdout)
