//! Configuration: `routes.toml` is read once, in two stages — raw serde
//! shapes (`raw`) compiled into a validated model (`model`) by independent
//! checks (`check`, one file per section, values parsed in `values`) that
//! report every error with `file:line:column`.
//! `lambdagate validate` runs exactly this code.

mod check;
pub mod error;
pub mod model;
pub mod raw;
pub mod shaping;
pub(crate) mod values;

use std::path::Path;
use std::sync::Arc;

pub(crate) use check::substitute;
pub use error::{ConfigError, ConfigErrors};
pub use model::*;

use error::Diagnostics;

/// Reads, parses and validates a routes file.
pub fn load(path: &Path) -> Result<Arc<Config>, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read the routes file: {e}"),
        }])
    })?;
    parse(path, &source)
}

/// Parses and validates routes-file text; `path` names it in messages and
/// anchors relative paths.
pub fn parse(path: &Path, source: &str) -> Result<Arc<Config>, ConfigErrors> {
    let mut d = Diagnostics::new(path, source);
    let raw: raw::RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => d.at(span, message),
                None => d.whole_file(message),
            }
            return Err(d.finish().expect_err("an error was just recorded"));
        }
    };
    let config = check::validate(raw, path, &mut d);
    d.finish()?;
    Ok(Arc::new(config.expect("no errors means a model was built")))
}
