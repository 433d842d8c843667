//! `lambdagate keys`: issue and manage API keys, either directly in the
//! store named by the routes file, or through a running gateway's admin API
//! (`--admin-url`, token from `LAMBDAGATE_ADMIN_TOKEN` or `--token-env`).
//!
//! Examples:
//!   lambdagate keys create --name acme --plan gold --expires 30d
//!   lambdagate keys list
//!   lambdagate keys revoke k3x9a0b1c2
//!   lambdagate keys usage k3x9a0b1c2 --admin-url http://127.0.0.1:9081

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin::keys::{CreatedKey, DayUsage, KeyUsage, KeyView, QuotaUsage};
use crate::auth::api_key;
use crate::store::{NewKey, Store, now_secs};
use crate::throttle::quota::{day_string, period_bounds};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    /// Talk to a running gateway's admin API instead of opening the store.
    #[arg(long, global = true)]
    pub admin_url: Option<String>,
    /// Environment variable holding the admin token (with --admin-url).
    #[arg(long, global = true, default_value = crate::admin::DEFAULT_TOKEN_ENV)]
    pub token_env: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the key is printed this once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        plan: Option<String>,
        /// Lifetime, like 30d or 12h.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Disable a key: every node refuses it within the key cache TTL.
    Revoke { id: String },
    /// Requests per day and what is left of the quota.
    Usage {
        id: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

pub fn run(config_path: &Path, args: KeysArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json_out = args.json;
    let result = runtime.block_on(async {
        match &args.admin_url {
            Some(url) => remote(url, &args).await,
            None => local(config_path, &args.command).await,
        }
    });
    match result {
        Ok(v) => {
            print(&args.command, &v, json_out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Against the store the routes file names.
async fn local(config_path: &Path, cmd: &KeysCommand) -> Result<Value, String> {
    let config = crate::config::load(config_path).map_err(|e| e.to_string())?;
    let store = Store::open(&config.store)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let plan_exists = |name: &str| {
        let store = store.clone();
        let in_config = config.plans.contains_key(name);
        let name = name.to_string();
        async move {
            if in_config {
                return Ok(true);
            }
            store
                .plan(&name)
                .await
                .map(|p| p.is_some())
                .map_err(|e| e.to_string())
        }
    };
    match cmd {
        KeysCommand::Create {
            name,
            plan,
            expires,
        } => {
            if let Some(p) = plan
                && !plan_exists(p).await?
            {
                return Err(format!(
                    "unknown plan `{p}`; define it as [plans.{p}] in {}",
                    config_path.display()
                ));
            }
            let now = now_secs();
            let expires_at = match expires {
                Some(e) => Some(now + api_key::parse_expiry(e)?.as_secs() as i64),
                None => None,
            };
            let g = api_key::generate();
            let rec = store
                .create_key(&NewKey {
                    id: &g.id,
                    name,
                    key_hash: &g.hash,
                    plan: plan.as_deref(),
                    expires_at,
                    now,
                })
                .await
                .map_err(|e| e.to_string())?;
            to_value(&CreatedKey {
                record: KeyView::from(&rec),
                key: g.key,
            })
        }
        KeysCommand::List => {
            let list: Vec<KeyView> = store
                .keys()
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(KeyView::from)
                .collect();
            to_value(&list)
        }
        KeysCommand::Revoke { id } => {
            let rec = store
                .set_key_enabled(id, false, now_secs())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no API key `{id}`"))?;
            to_value(&KeyView::from(&rec))
        }
        KeysCommand::Usage { id, days } => {
            let rec = store
                .key(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no API key `{id}`"))?;
            let now = time::OffsetDateTime::now_utc();
            let back = i64::from((*days).clamp(1, 366)) - 1;
            let since = day_string(now - time::Duration::days(back));
            let days = store
                .daily_usage(id, &since)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(day, requests)| DayUsage { day, requests })
                .collect();
            let plan = match &rec.plan {
                Some(p) => match config.plans.get(p) {
                    Some(c) => Some(c.clone()),
                    None => store
                        .plan(p)
                        .await
                        .map_err(|e| e.to_string())?
                        .map(|r| api_key::plan_from_record(&r)),
                },
                None => None,
            };
            let quota = match plan.and_then(|p| p.quota) {
                Some(q) => {
                    let (start, end) = period_bounds(q.period, now);
                    let used = store
                        .quota_used(id, start)
                        .await
                        .map_err(|e| e.to_string())?;
                    Some(QuotaUsage {
                        limit: q.limit,
                        period: api_key::period_name(q.period).to_string(),
                        used,
                        remaining: q.limit.saturating_sub(used),
                        period_start: start,
                        resets_at: end,
                    })
                }
                None => None,
            };
            to_value(&KeyUsage {
                id: rec.id,
                plan: rec.plan,
                quota,
                days,
            })
        }
    }
}

/// Through the admin API.
async fn remote(base: &str, args: &KeysArgs) -> Result<Value, String> {
    let token = std::env::var(&args.token_env)
        .map_err(|_| format!("set {} to the admin token", args.token_env))?;
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let req = match &args.command {
        KeysCommand::Create {
            name,
            plan,
            expires,
        } => client
            .post(format!("{base}/keys"))
            .json(&json!({ "name": name, "plan": plan, "expires_in": expires })),
        KeysCommand::List => client.get(format!("{base}/keys")),
        KeysCommand::Revoke { id } => client.post(format!("{base}/keys/{id}/disable")),
        KeysCommand::Usage { id, days } => {
            client.get(format!("{base}/keys/{id}/usage?days={days}"))
        }
    };
    let res = req
        .bearer_auth(token.trim())
        .send()
        .await
        .map_err(|e| format!("admin API unreachable: {e}"))?;
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!(
            "{status}: {}",
            body.get("message").and_then(Value::as_str).unwrap_or("")
        ))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn print(cmd: &KeysCommand, v: &Value, json_out: bool) {
    if json_out {
        println!("{v}");
        return;
    }
    let s = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    };
    match cmd {
        KeysCommand::Create { .. } => {
            println!("id:   {}", s(v, "id"));
            println!("name: {}", s(v, "name"));
            println!("plan: {}", s(v, "plan"));
            println!("key:  {}", s(v, "key"));
            println!("The key is shown only now; lambdagate keeps only its hash.");
        }
        KeysCommand::List => {
            println!(
                "{:<12} {:<24} {:<12} {:<8} EXPIRES",
                "ID", "NAME", "PLAN", "ENABLED"
            );
            for k in v.as_array().into_iter().flatten() {
                println!(
                    "{:<12} {:<24} {:<12} {:<8} {}",
                    s(k, "id"),
                    s(k, "name"),
                    s(k, "plan"),
                    s(k, "enabled"),
                    s(k, "expires_at")
                );
            }
        }
        KeysCommand::Revoke { .. } => println!("revoked {}", s(v, "id")),
        KeysCommand::Usage { .. } => {
            if let Some(q) = v.get("quota").filter(|q| !q.is_null()) {
                println!(
                    "quota: {} of {} per {} used, {} left",
                    s(q, "used"),
                    s(q, "limit"),
                    s(q, "period"),
                    s(q, "remaining")
                );
            }
            for d in v
                .get("days")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!("{}  {}", s(d, "day"), s(d, "requests"));
            }
        }
    }
}
