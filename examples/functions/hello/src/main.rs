//! `hello`: the smallest function, on `lambda_runtime` with plain JSON.
//!
//! Behind an HTTP API route it answers `{"message":"hello NAME"}` with NAME
//! from `?name=`; invoked directly (Invoke API) with `{"name":"x"}` it
//! answers the same. `HELLO_GREETING` changes the greeting.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let greeting = std::env::var("HELLO_GREETING").unwrap_or_else(|_| "hello".to_string());
    run(service_fn(move |event: LambdaEvent<Value>| {
        let greeting = greeting.clone();
        async move { handle(&greeting, event) }
    }))
    .await
}

fn handle(greeting: &str, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let name = payload
        .pointer("/queryStringParameters/name")
        .or_else(|| payload.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("world");
    println!("greeting {name}");
    let message = json!({ "message": format!("{greeting} {name}") });
    if payload.get("requestContext").is_none() {
        // A direct invocation: answer with plain JSON.
        return Ok(json!({
            "message": message["message"],
            "requestId": context.request_id,
            "functionName": context.env_config.function_name,
        }));
    }
    Ok(json!({
        "statusCode": 200,
        "headers": { "content-type": "application/json" },
        "body": message.to_string(),
    }))
}
