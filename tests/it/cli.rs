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

/// `keys` has subcommands of its own; each has help with an example.
#[test]
fn nested_subcommands_have_help_with_examples() {
    let help = |args: &[&str]| {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let keys = help(&["keys", "--help"]);
    let subcommands: Vec<String> = keys
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert_eq!(subcommands, ["create", "list", "revoke", "usage"]);
    for c in &subcommands {
        let h = help(&["keys", c, "--help"]);
        assert!(h.contains("Examples:"), "keys {c} --help:\n{h}");
        assert!(
            h.contains(&format!("lambdagate keys {c}")),
            "keys {c} --help has no example of itself:\n{h}"
        );
    }
}

/// `--log-format pretty` writes human-readable lines, `json` JSON objects,
/// and anything else is refused with the valid values.
#[tokio::test]
async fn log_format_pretty_json_and_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[[routes]]\nmethod = \"GET\"\npath = \"/ping\"\nmock = { status = 200, body = \"pong\" }\n",
    )
    .unwrap();
    for format in ["pretty", "json"] {
        let gw = crate::common::spawn_binary(
            &routes,
            &["--log-format", format],
            &std::collections::HashMap::new(),
        )
        .await;
        let id = format!("cli-log-{format}");
        let res = client()
            .get(gw.url("/ping"))
            .header("x-amzn-requestid", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let line = loop {
            if let Some(l) = gw
                .stderr_lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(&id))
            {
                break l.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no access-log line");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let parsed = serde_json::from_str::<serde_json::Value>(&line);
        if format == "json" {
            assert_eq!(parsed.unwrap()["target"], "lambdagate::access");
        } else {
            assert!(parsed.is_err(), "pretty line is JSON: {line}");
            assert!(
                line.contains(" INFO lambdagate::access: "),
                "not a plain pretty line: {line:?}"
            );
        }
    }
    let out = Command::new(binary())
        .args(["--log-format", "xml", "validate", "--config"])
        .arg(&routes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("possible values: pretty, json"), "{stderr}");
}
