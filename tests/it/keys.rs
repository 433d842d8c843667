//! API keys, usage plans, throttling and quotas; the admin API.

use crate::common::{client, start_with};

const TOKEN: &str = "test-admin-token-7f3a";

fn admin_routes(extra: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

[[routes]]
method = "GET"
path = "/ping"
mock = {{ status = 200, body = "pong" }}
{extra}
"#
    )
}

#[tokio::test]
async fn admin_api_needs_the_token() {
    let gw = start_with(
        &admin_routes(""),
        &[("admin.token", format!("{TOKEN}\n").as_bytes())],
        Default::default(),
    )
    .await;
    let c = client();
    let url = gw.admin_url("/openapi.json");

    let none = c.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"message": "Unauthorized"}));

    let wrong = c.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let doc: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "lambdagate admin API");

    // The public listener does not serve the admin API.
    let public = c
        .get(gw.url("/openapi.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        !public
            .text()
            .await
            .unwrap()
            .contains("lambdagate admin API")
    );
}
