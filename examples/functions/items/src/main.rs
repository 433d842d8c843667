//! `items`: JSON CRUD over an in-memory store, on `lambda_http`.
//!
//! `GET /items`, `POST /items` (a JSON object with a `name`), `GET`, `PUT`
//! and `DELETE /items/{id}`. The store lives in the function process, so the
//! example runs it with `concurrency = 1`: one warm process keeps the data.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use serde_json::{Value, json};

#[derive(Default)]
struct Store {
    next_id: u64,
    items: BTreeMap<u64, Value>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let store = Arc::new(Mutex::new(Store::default()));
    run(service_fn(move |req: Request| {
        let store = store.clone();
        async move { handle(&store, req) }
    }))
    .await
}

fn reply(status: u16, body: Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))?)
}

fn not_found(id: &str) -> Result<Response<Body>, Error> {
    reply(404, json!({ "message": format!("no item {id}") }))
}

/// The request body as a JSON object with a string `name`.
fn item_from(req: &Request) -> Result<serde_json::Map<String, Value>, String> {
    let bytes: &[u8] = req.body().as_ref();
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the body must be a JSON object".to_string());
    };
    if !object.get("name").is_some_and(Value::is_string) {
        return Err("`name` (a string) is required".to_string());
    }
    object.remove("id");
    Ok(object)
}

fn handle(store: &Mutex<Store>, req: Request) -> Result<Response<Body>, Error> {
    let mut store = store.lock().map_err(|_| "store poisoned")?;
    let id_param = req.path_parameters().first("id").map(str::to_string);
    match (req.method().clone(), id_param) {
        (Method::GET, None) => {
            let items: Vec<&Value> = store.items.values().collect();
            reply(200, json!({ "items": items }))
        }
        (Method::POST, None) => match item_from(&req) {
            Err(message) => reply(400, json!({ "message": message })),
            Ok(mut object) => {
                store.next_id += 1;
                let id = store.next_id;
                object.insert("id".to_string(), json!(id.to_string()));
                let item = Value::Object(object);
                store.items.insert(id, item.clone());
                reply(201, item)
            }
        },
        (method, Some(id)) => {
            let Some(key) = id
                .parse::<u64>()
                .ok()
                .filter(|k| store.items.contains_key(k))
            else {
                return not_found(&id);
            };
            match method {
                Method::GET => reply(200, store.items[&key].clone()),
                Method::PUT => match item_from(&req) {
                    Err(message) => reply(400, json!({ "message": message })),
                    Ok(mut object) => {
                        object.insert("id".to_string(), json!(id));
                        let item = Value::Object(object);
                        store.items.insert(key, item.clone());
                        reply(200, item)
                    }
                },
                Method::DELETE => {
                    store.items.remove(&key);
                    Ok(Response::builder().status(204).body(Body::Empty)?)
                }
                _ => reply(405, json!({ "message": "method not allowed" })),
            }
        }
        _ => reply(405, json!({ "message": "method not allowed" })),
    }
}
