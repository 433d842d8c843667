//! The template set: every response template file and inline mapping
//! template of a routes file in one minijinja environment, compiled at load
//! time so syntax errors are config errors (`file:line`). Template files may
//! `extends`/`include`/`import` each other by paths relative to the including
//! file; `.html`/`.htm`/`.xml` files autoescape. Rendering never panics: an
//! error is returned for the caller to turn into a 502.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use minijinja::value::{Object, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use std::sync::Arc;

use crate::config::error::Diagnostics;
use crate::config::raw::Str;

/// Files of these kinds beside a referenced template are compiled with it,
/// so an included file's syntax error is found at load time too.
const TEMPLATE_EXTENSIONS: &[&str] = &[
    "html", "htm", "xml", "txt", "csv", "json", "j2", "jinja", "jinja2", "md", "tmpl", "svg",
];
const MAX_PRELOADED_FILES: usize = 2000;
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// Collects templates while the config is validated.
pub struct TemplateSetBuilder {
    base_dir: PathBuf,
    /// name → file
    files: BTreeMap<String, PathBuf>,
    /// Folders whose template files are compiled along.
    folders: Vec<PathBuf>,
    /// (name, source, span in the routes file)
    inline: Vec<(String, String, std::ops::Range<usize>)>,
}

/// The compiled templates of one routes file.
pub struct TemplateSet {
    env: Environment<'static>,
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.templates().map(|(n, _)| n).collect();
        f.debug_struct("TemplateSet")
            .field("templates", &names)
            .finish()
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        Self {
            env: new_environment(PathBuf::from(".")),
        }
    }
}

/// A template name for a path relative to the routes file: forward slashes,
/// no `.` or `..`; `None` if it leaves the folder.
fn normalize(rel: &str) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.is_empty()).then(|| out.join("/"))
}

impl TemplateSetBuilder {
    pub fn new(base_dir: &Path) -> Self {
        Self {
            base_dir: base_dir.to_path_buf(),
            files: BTreeMap::new(),
            folders: Vec::new(),
            inline: Vec::new(),
        }
    }

    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// A template file named in routes.toml (relative to it); returns its name.
    pub fn add_file(&mut self, p: &Str, d: &mut Diagnostics<'_>) -> Option<String> {
        let Some(name) = normalize(p.get_ref()) else {
            d.at(
                p.span(),
                format!(
                    "template `{}` must be a path inside the routes file's folder",
                    p.get_ref()
                ),
            );
            return None;
        };
        let path = self.base_dir.join(&name);
        if !path.is_file() {
            d.at(
                p.span(),
                format!("template file `{}` does not exist", path.display()),
            );
            return None;
        }
        if let Some(parent) = path.parent()
            && !self.folders.iter().any(|f| f == parent)
        {
            self.folders.push(parent.to_path_buf());
        }
        self.files.insert(name.clone(), path);
        Some(name)
    }

    /// An inline template written in routes.toml; returns its name
    /// (`routes.toml:LINE:COL`).
    pub fn add_inline(
        &mut self,
        t: &Str,
        file_name: &str,
        d: &mut Diagnostics<'_>,
    ) -> Option<String> {
        let (line, col) = crate::config::error::line_col(d.source(), t.span().start);
        let name = format!("{file_name}:{line}:{col}");
        self.inline
            .push((name.clone(), t.get_ref().clone(), t.span()));
        Some(name)
    }

    /// Compiles everything; syntax errors are reported with file:line.
    pub fn finish(mut self, d: &mut Diagnostics<'_>) -> TemplateSet {
        let mut env = new_environment(self.base_dir.clone());
        // Sibling templates of every referenced file (recursively, except in
        // the routes file's own folder) are compiled now as well.
        let mut preload: BTreeMap<String, PathBuf> = BTreeMap::new();
        for folder in &self.folders {
            let recursive = folder != &self.base_dir && folder.strip_prefix(&self.base_dir).is_ok();
            collect_files(folder, recursive, &mut preload, &self.base_dir);
        }
        preload.append(&mut self.files);
        for (name, path) in preload {
            let source = match std::fs::read(&path) {
                Ok(b) => match String::from_utf8(b) {
                    Ok(s) => s,
                    Err(_) => {
                        d.in_file(&path, 0, 0, "template is not UTF-8 text");
                        continue;
                    }
                },
                Err(e) => {
                    d.in_file(&path, 0, 0, format!("cannot read template: {e}"));
                    continue;
                }
            };
            if let Err(e) = env.add_template_owned(name, source) {
                d.in_file(
                    &path,
                    e.line().unwrap_or(0),
                    1,
                    format!("template syntax error: {}", describe(&e)),
                );
            }
        }
        for (name, source, span) in self.inline {
            if let Err(e) = env.add_template_owned(name, source) {
                d.at(
                    span,
                    format!(
                        "template syntax error on line {} of the template: {}",
                        e.line().unwrap_or(1),
                        describe(&e)
                    ),
                );
            }
        }
        TemplateSet { env }
    }
}

fn collect_files(dir: &Path, recursive: bool, out: &mut BTreeMap<String, PathBuf>, base: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.len() >= MAX_PRELOADED_FILES {
            return;
        }
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let Ok(meta) = entry.metadata() else { continue };
        if hidden {
            continue;
        }
        if meta.is_dir() {
            if recursive {
                collect_files(&path, true, out, base);
            }
            continue;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if !TEMPLATE_EXTENSIONS.contains(&ext.as_str()) || meta.len() > MAX_TEMPLATE_BYTES {
            continue;
        }
        if let Ok(rel) = path.strip_prefix(base)
            && let Some(name) = rel.to_str().and_then(normalize)
        {
            out.insert(name, path);
        }
    }
}

/// The error's own words, without minijinja's template-name suffix.
pub fn describe(e: &Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn new_environment(base_dir: PathBuf) -> Environment<'static> {
    let mut env = Environment::new();
    // Text formats (CSV, plain text) keep the file's last newline.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // `{% include "partials/x.html" %}` is relative to the including file.
    env.set_path_join_callback(|name, parent| {
        if let Some(abs) = name.strip_prefix('/') {
            return Cow::Owned(abs.to_string());
        }
        let dir = match parent.rfind('/') {
            Some(i) => &parent[..i],
            None => "",
        };
        let joined = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        Cow::Owned(normalize(&joined).unwrap_or_else(|| name.to_string()))
    });
    // Templates not compiled at load (outside the preloaded folders) are read
    // on first use; they must stay inside the routes file's folder.
    env.set_loader(move |name| {
        let Some(clean) = normalize(name) else {
            return Ok(None);
        };
        match std::fs::read_to_string(base_dir.join(clean)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot read template: {e}"),
            )),
        }
    });
    env.set_auto_reload(false);
    // Bounded work per render: a template loop cannot hang a request.
    env.set_recursion_limit(100);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("escape_js", escape_js);
    env.add_filter("urldecode", urldecode);
    env.add_filter("parse_json", parse_json);
    env.add_global("util", Value::from_object(Util));
    env
}

impl TemplateSet {
    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, Error> {
        self.env.get_template(name)?.render(ctx)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }
}

pub fn b64encode(v: &Value) -> String {
    let s = v
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

pub fn b64decode(v: &str) -> Result<String, Error> {
    let bytes = crate::event::decode_base64_body(v)
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not valid base64"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `$util.escapeJavaScript`: escapes a string for a JS/JSON string literal
/// (quotes, backslashes, control characters; `'` too, as API Gateway does).
pub fn escape_js(v: &Value) -> String {
    let s = v
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

pub fn urlencode_str(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%2E", ".")
        .replace("%5F", "_")
        .replace("%7E", "~")
}

pub fn urldecode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub fn parse_json(s: &str) -> Result<Value, Error> {
    let v: serde_json::Value = serde_json::from_str(s)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("not JSON: {e}")))?;
    Ok(Value::from(minijinja::value::Serde(&v)))
}

/// `$util` as an object: `util.escapeJavaScript(x)`, `util.urlEncode(x)`,
/// `util.urlDecode(x)`, `util.base64Encode(x)`, `util.base64Decode(x)`,
/// `util.parseJson(x)`.
#[derive(Debug)]
struct Util;

impl Object for Util {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let arg = args.first().cloned().unwrap_or(Value::UNDEFINED);
        let text = || {
            arg.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| arg.to_string())
        };
        Ok(match method {
            "escapeJavaScript" => Value::from(escape_js(&arg)),
            "urlEncode" => Value::from(urlencode_str(&text())),
            "urlDecode" => Value::from(urldecode(&text())),
            "base64Encode" => Value::from(b64encode(&arg)),
            "base64Decode" => Value::from(b64decode(&text())?),
            "parseJson" => parse_json(&text())?,
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_stays_inside() {
        assert_eq!(
            normalize("templates/./a.html").as_deref(),
            Some("templates/a.html")
        );
        assert_eq!(normalize("templates/../a.html").as_deref(), Some("a.html"));
        assert_eq!(normalize("../a.html"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    #[test]
    fn util_helpers() {
        assert_eq!(escape_js(&Value::from("a\"b'c\n")), "a\\\"b\\'c\\n");
        assert_eq!(urlencode_str("a b/c"), "a%20b%2Fc");
        assert_eq!(urldecode("a%20b+c"), "a b c");
        assert_eq!(b64encode(&Value::from("hi")), "aGk=");
        assert_eq!(b64decode("aGk=").unwrap(), "hi");
    }

    #[test]
    fn relative_includes_and_autoescape() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/partials")).unwrap();
        std::fs::write(
            dir.path().join("t/base.html"),
            "<h1>{% block t %}{% endblock %}</h1>",
        )
        .unwrap();
        std::fs::write(dir.path().join("t/partials/x.html"), "[{{ v }}]").unwrap();
        std::fs::write(
            dir.path().join("t/page.html"),
            "{% extends \"base.html\" %}{% block t %}{% include \"partials/x.html\" %}{% endblock %}",
        )
        .unwrap();
        let src = "t = \"t/page.html\"";
        let mut d = Diagnostics::new(Path::new("routes.toml"), src);
        let mut b = TemplateSetBuilder::new(dir.path());
        let name = b
            .add_file(
                &toml::Spanned::new(4..17, "t/page.html".to_string()),
                &mut d,
            )
            .unwrap();
        let set = b.finish(&mut d);
        assert!(!d.has_errors());
        let out = set
            .render(&name, minijinja::context! { v => "<b>" })
            .unwrap();
        assert_eq!(out, "<h1>[&lt;b&gt;]</h1>");
    }
}
