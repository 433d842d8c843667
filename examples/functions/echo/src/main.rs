//! `echo`: answers with the request it received, as `lambda_http` sees it
//! behind API Gateway: method, path, path and query parameters, headers,
//! cookies, body, stage variables and the request context. Useful to see
//! what a function gets, and used by the local backend's tests.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use serde_json::{Map, Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(echo)).await
}

async fn echo(req: Request) -> Result<Response<Body>, Error> {
    let headers: Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let cookies: Vec<String> = req
        .headers()
        .get_all("cookie")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split("; "))
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let to_map = |q: lambda_http::aws_lambda_events::query_map::QueryMap| -> Map<String, Value> {
        q.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    };
    let (stage, route_key, request_id) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => {
            (c.stage.clone(), c.route_key.clone(), c.request_id.clone())
        }
        Some(RequestContext::ApiGatewayV1(c)) => (
            c.stage.clone(),
            c.resource_path.clone(),
            c.request_id.clone(),
        ),
        _ => (None, None, None),
    };
    let body = match req.body() {
        Body::Empty => Value::Null,
        Body::Text(t) => Value::String(t.clone()),
        Body::Binary(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        _ => Value::Null,
    };
    let answer = json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "rawQuery": req.uri().query(),
        "pathParameters": to_map(req.path_parameters()),
        "queryStringParameters": to_map(req.query_string_parameters()),
        "stageVariables": to_map(req.stage_variables()),
        "headers": headers,
        "cookies": cookies,
        "body": body,
        "stage": stage,
        "routeKey": route_key,
        "requestId": request_id,
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-echo", "yes")
        .body(Body::Text(answer.to_string()))?)
}
