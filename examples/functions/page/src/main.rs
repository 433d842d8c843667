//! `page`: an HTML page, on `lambda_http`. `GET /` shows a welcome page;
//! `GET /hello/{name}` greets NAME (`?lang=fr` greets in French).

use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(page)).await
}

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(req: Request) -> Result<Response<Body>, Error> {
    let params = req.path_parameters();
    let (title, text) = match params.first("name") {
        Some(name) => {
            let greeting = match req.query_string_parameters().first("lang") {
                Some("fr") => "Bonjour",
                Some("de") => "Hallo",
                _ => "Hello",
            };
            let name = escape(name);
            (
                format!("{greeting}, {name}"),
                format!("{greeting}, {name}!"),
            )
        }
        None => (
            "lambdagate".to_string(),
            "This page was rendered by a Lambda function run by lambdagate's local backend."
                .to_string(),
        ),
    };
    let html = format!(
        "<!doctype html>\n<html><head><title>{title}</title></head>\n<body><h1>{text}</h1></body></html>\n"
    );
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .body(Body::Text(html))?)
}
