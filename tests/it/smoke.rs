use crate::common::{client, start};

#[tokio::test]
async fn mock_route_answers_and_unknown_route_is_404() {
    let gw = start(
        r#"
[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }
"#,
    )
    .await;
    let res = client().get(gw.url("/ping")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("apigw-requestid"));
    assert_eq!(res.text().await.unwrap(), "pong");
    let res = client().get(gw.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Not Found"}"#);
}
