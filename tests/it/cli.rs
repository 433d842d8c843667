//! The binary's commands, run as a user runs them.

use std::process::Command;

use crate::common::{binary, client, start};

#[test]
fn validate_prints_a_summary_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        "[backends.legacy]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"/ping\"\nmock = { status = 200 }\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("ok — 1 routes"), "{stdout}");
    assert!(stdout.contains("legacy (http)"), "{stdout}");
}

#[test]
fn validate_reports_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nfunction = \"nope\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"/b/{x+}/c\"\nmock = { status = 200 }\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("routes.toml:4:12: unknown function `nope`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes.toml:8:12: greedy parameter"),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

#[test]
fn serve_refuses_a_config_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, "[gateway]\nflavor = \"soap\"\n").unwrap();
    let out = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes.toml:2:10"));
}

/// The gateway is a library: its Router nests inside another axum app.
#[tokio::test]
async fn gateway_router_embeds_in_another_app() {
    let gw = start("[[routes]]\nmethod = \"GET\"\npath = \"/ping\"\nmock = { status = 200, body = \"pong\" }\n").await;
    let app = axum::Router::new()
        .route("/own", axum::routing::get(|| async { "host app" }))
        .nest_service("/api", gw.gateway.router());
    let server = crate::common::serve_router(app).await;
    let own = client().get(server.url("/own")).send().await.unwrap();
    assert_eq!(own.text().await.unwrap(), "host app");
    let ping = client().get(server.url("/api/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), "pong");
}
