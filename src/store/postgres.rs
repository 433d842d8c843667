//! The shared store: PostgreSQL, so several gateway nodes see the same keys,
//! plans and quota counters. Tables live in `[store] schema` when set
//! (created if missing), else in the server's search path; migrations run on
//! first open under sqlx's advisory lock, so nodes may start together.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use super::StoreError;

pub async fn open(url: &str, schema: Option<&str>) -> Result<PgPool, StoreError> {
    let mut options = PgConnectOptions::from_str(url)?;
    if let Some(schema) = schema {
        // The schema name was validated as a plain identifier.
        let setup = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        if let Err(e) = setup.execute(sqlx::AssertSqlSafe(create)).await {
            // Two nodes creating it at once: the loser sees a duplicate.
            let dup = matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation());
            if !dup {
                return Err(e.into());
            }
        }
        setup.close().await;
        options = options.options([("search_path", schema)]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    sqlx::migrate!("migrations/postgres").run(&pool).await?;
    Ok(pool)
}
