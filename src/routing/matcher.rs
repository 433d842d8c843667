//! Route templates and the table that matches a request against them.
//!
//! Matching follows API Gateway: a literal segment beats `{param}`, which
//! beats a greedy `{proxy+}`; at one template an explicit method beats `ANY`.
//! When the most specific template lacks the method, less specific templates
//! are tried before giving up.

use std::collections::HashMap;
use std::fmt;

use foldhash::fast::RandomState;

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// A parsed path template such as `/items/{id}` or `/files/{proxy+}`, or
/// the HTTP API catch-all `$default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
    default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset inside the template text.
    pub offset: usize,
    pub message: String,
}

impl RouteTemplate {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text == "$default" {
            return Ok(Self {
                text: text.to_string(),
                segments: Vec::new(),
                default: true,
            });
        }
        if !text.starts_with('/') {
            return Err(TemplateError {
                offset: 0,
                message: format!("path `{text}` must start with `/` (or be `$default`)"),
            });
        }
        let mut segments = Vec::new();
        let mut offset = 1;
        let body = &text[1..];
        let parts: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        let count = parts.len();
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(TemplateError {
                    offset,
                    message: format!("path `{text}` has an empty segment"),
                });
            }
            let seg = if let Some(inner) = part.strip_prefix('{') {
                let Some(inner) = inner.strip_suffix('}') else {
                    return Err(TemplateError {
                        offset,
                        message: format!("segment `{part}` opens `{{` but does not close it"),
                    });
                };
                let (name, greedy) = match inner.strip_suffix('+') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
                {
                    return Err(TemplateError {
                        offset,
                        message: format!(
                            "parameter name `{name}` must be letters, digits, `_`, `-` or `.`"
                        ),
                    });
                }
                if greedy {
                    if i + 1 != count {
                        return Err(TemplateError {
                            offset,
                            message: format!(
                                "greedy parameter `{{{name}+}}` must be the last segment of the path"
                            ),
                        });
                    }
                    Segment::Greedy(name.to_string())
                } else {
                    Segment::Param(name.to_string())
                }
            } else {
                if part.contains('{') || part.contains('}') {
                    return Err(TemplateError {
                        offset,
                        message: format!(
                            "segment `{part}` mixes text and a parameter; a parameter must be a whole segment"
                        ),
                    });
                }
                Segment::Literal(part.to_string())
            };
            segments.push(seg);
            offset += part.len() + 1;
        }
        let mut names = std::collections::HashSet::new();
        for s in &segments {
            if let Segment::Param(n) | Segment::Greedy(n) = s
                && !names.insert(n.clone())
            {
                return Err(TemplateError {
                    offset: 0,
                    message: format!("parameter `{n}` appears twice in `{text}`"),
                });
            }
        }
        Ok(Self {
            text: text.to_string(),
            segments,
            default: false,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The HTTP API `$default` catch-all route.
    pub fn is_default(&self) -> bool {
        self.default
    }

    pub fn greedy_param(&self) -> Option<&str> {
        match self.segments.last() {
            Some(Segment::Greedy(n)) => Some(n),
            _ => None,
        }
    }

    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The outcome of matching one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        route: usize,
        /// Decoded path parameters, in template order.
        params: Vec<(String, String)>,
    },
    /// Some template matched the path, none for this method.
    MethodNotAllowed,
    NotFound,
}

#[derive(Debug, Default)]
struct Methods {
    /// By method; a handful at most, so a list beats hashing the name.
    exact: Vec<(String, usize)>,
    any: Option<usize>,
}

impl Methods {
    fn get(&self, method: &str) -> Option<usize> {
        self.exact
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, r)| *r)
            .or(self.any)
    }
    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.any.is_none()
    }
}

#[derive(Debug, Default)]
struct Node {
    methods: Methods,
    literals: HashMap<String, Node, RandomState>,
    param: Option<(String, Box<Node>)>,
    greedy: Option<(String, Methods)>,
}

/// Conflicts found while building the table (reported as config errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableConflict {
    /// The same method and template twice; carries the earlier route index.
    Duplicate { earlier: usize },
    /// `{a}` and `{b}` at the same position under the same prefix.
    ParamName { earlier: String, this: String },
}

/// All routes of one API, ready to match.
#[derive(Debug, Default)]
pub struct RouteTable {
    root: Node,
    default: Methods,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route; `method` is upper-case or `ANY`.
    pub fn insert(
        &mut self,
        method: &str,
        template: &RouteTemplate,
        route: usize,
    ) -> Result<(), TableConflict> {
        if template.is_default() {
            return put(&mut self.default, method, route);
        }
        let mut node = &mut self.root;
        for seg in template.segments() {
            match seg {
                Segment::Literal(l) => {
                    node = node.literals.entry(l.clone()).or_default();
                }
                Segment::Param(name) => {
                    if let Some((existing, _)) = &node.param
                        && existing != name
                    {
                        return Err(TableConflict::ParamName {
                            earlier: existing.clone(),
                            this: name.clone(),
                        });
                    }
                    node = &mut node
                        .param
                        .get_or_insert_with(|| (name.clone(), Box::default()))
                        .1;
                }
                Segment::Greedy(name) => {
                    if let Some((existing, _)) = &node.greedy
                        && existing != name
                    {
                        return Err(TableConflict::ParamName {
                            earlier: existing.clone(),
                            this: name.clone(),
                        });
                    }
                    let methods = &mut node
                        .greedy
                        .get_or_insert_with(|| (name.clone(), Methods::default()))
                        .1;
                    return put(methods, method, route);
                }
            }
        }
        put(&mut node.methods, method, route)
    }

    /// Matches a raw (still percent-encoded) path, without any stage prefix.
    pub fn find(&self, method: &str, raw_path: &str) -> RouteMatch {
        let trimmed = raw_path.strip_prefix('/').unwrap_or(raw_path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        // The segments, on the stack for paths of up to `STACK_SEGMENTS`.
        let mut on_stack = [""; STACK_SEGMENTS];
        let mut on_heap = Vec::new();
        let segs: &[&str] = if trimmed.is_empty() {
            &[]
        } else {
            let mut n = 0;
            for seg in trimmed.split('/') {
                if n < STACK_SEGMENTS {
                    on_stack[n] = seg;
                } else {
                    if n == STACK_SEGMENTS {
                        on_heap.extend_from_slice(&on_stack);
                    }
                    on_heap.push(seg);
                }
                n += 1;
            }
            if n <= STACK_SEGMENTS {
                &on_stack[..n]
            } else {
                &on_heap
            }
        };
        let mut params = Vec::new();
        let mut path_seen = false;
        let path = Path {
            text: trimmed,
            segs,
        };
        if let Some(route) = walk(&self.root, &path, 0, method, &mut params, &mut path_seen) {
            return RouteMatch::Found { route, params };
        }
        if let Some(route) = self.default.get(method) {
            return RouteMatch::Found {
                route,
                params: Vec::new(),
            };
        }
        if path_seen {
            RouteMatch::MethodNotAllowed
        } else {
            RouteMatch::NotFound
        }
    }
}

/// Path segments matched without allocating up to this many.
const STACK_SEGMENTS: usize = 16;

/// A request path split into segments (slices of `text`).
struct Path<'a> {
    /// The path without its leading and trailing `/`.
    text: &'a str,
    segs: &'a [&'a str],
}

impl Path<'_> {
    /// The path from segment `i` to the end, as sent (`/` between segments).
    fn rest(&self, i: usize) -> &str {
        let start = self.segs[i].as_ptr() as usize - self.text.as_ptr() as usize;
        &self.text[start..]
    }
}

fn put(methods: &mut Methods, method: &str, route: usize) -> Result<(), TableConflict> {
    if method == "ANY" {
        if let Some(earlier) = methods.any {
            return Err(TableConflict::Duplicate { earlier });
        }
        methods.any = Some(route);
    } else {
        if let Some(earlier) = methods
            .exact
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, r)| *r)
        {
            return Err(TableConflict::Duplicate { earlier });
        }
        methods.exact.push((method.to_string(), route));
    }
    Ok(())
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn walk(
    node: &Node,
    path: &Path<'_>,
    i: usize,
    method: &str,
    params: &mut Vec<(String, String)>,
    path_seen: &mut bool,
) -> Option<usize> {
    let segs = path.segs;
    if i == segs.len() {
        if !node.methods.is_empty() {
            *path_seen = true;
        }
        return node.methods.get(method);
    }
    let seg = segs[i];
    // Literal: compare decoded text so `/a%20b` reaches `/a b`.
    let lit = node.literals.get(seg).or_else(|| {
        seg.contains('%')
            .then(|| node.literals.get(&decode(seg)))
            .flatten()
    });
    if let Some(child) = lit
        && let Some(r) = walk(child, path, i + 1, method, params, path_seen)
    {
        return Some(r);
    }
    if let Some((name, child)) = &node.param
        && !seg.is_empty()
    {
        params.push((name.clone(), decode(seg)));
        if let Some(r) = walk(child, path, i + 1, method, params, path_seen) {
            return Some(r);
        }
        params.pop();
    }
    if let Some((name, methods)) = &node.greedy {
        let rest = path.rest(i);
        if !rest.is_empty() && !methods.is_empty() {
            *path_seen = true;
            if let Some(r) = methods.get(method) {
                params.push((name.clone(), decode(rest)));
                return Some(r);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        let mut t = RouteTable::new();
        for (i, (m, p)) in routes.iter().enumerate() {
            t.insert(m, &RouteTemplate::parse(p).unwrap(), i).unwrap();
        }
        t
    }

    #[test]
    fn literal_beats_param_beats_greedy() {
        let t = table(&[
            ("GET", "/items/{id}"),
            ("GET", "/items/special"),
            ("ANY", "/{proxy+}"),
        ]);
        assert_eq!(
            t.find("GET", "/items/special"),
            RouteMatch::Found {
                route: 1,
                params: vec![]
            }
        );
        assert_eq!(
            t.find("GET", "/items/7"),
            RouteMatch::Found {
                route: 0,
                params: vec![("id".into(), "7".into())]
            }
        );
        assert_eq!(
            t.find("DELETE", "/items/7"),
            RouteMatch::Found {
                route: 2,
                params: vec![("proxy".into(), "items/7".into())]
            }
        );
    }

    #[test]
    fn explicit_method_beats_any_and_missing_method_is_reported() {
        let t = table(&[("ANY", "/pets"), ("GET", "/pets"), ("GET", "/cats")]);
        assert!(matches!(
            t.find("GET", "/pets"),
            RouteMatch::Found { route: 1, .. }
        ));
        assert!(matches!(
            t.find("POST", "/pets"),
            RouteMatch::Found { route: 0, .. }
        ));
        assert_eq!(t.find("POST", "/cats"), RouteMatch::MethodNotAllowed);
        assert_eq!(t.find("GET", "/dogs"), RouteMatch::NotFound);
    }

    #[test]
    fn params_are_percent_decoded() {
        let t = table(&[("GET", "/u/{name}"), ("GET", "/f/{path+}")]);
        assert_eq!(
            t.find("GET", "/u/J%C3%BCrgen%20M"),
            RouteMatch::Found {
                route: 0,
                params: vec![("name".into(), "Jürgen M".into())]
            }
        );
        assert_eq!(
            t.find("GET", "/f/a/b%2Fc"),
            RouteMatch::Found {
                route: 1,
                params: vec![("path".into(), "a/b/c".into())]
            }
        );
    }

    #[test]
    fn greedy_needs_at_least_one_segment() {
        let t = table(&[("GET", "/{proxy+}")]);
        assert_eq!(t.find("GET", "/"), RouteMatch::NotFound);
        assert!(matches!(t.find("GET", "/a"), RouteMatch::Found { .. }));
    }

    #[test]
    fn default_route_catches_the_rest() {
        let t = table(&[("GET", "/a"), ("ANY", "$default")]);
        assert!(matches!(
            t.find("POST", "/a"),
            RouteMatch::Found { route: 1, .. }
        ));
        assert!(matches!(
            t.find("GET", "/zzz"),
            RouteMatch::Found { route: 1, .. }
        ));
    }

    #[test]
    fn conflicts_are_reported() {
        let mut t = RouteTable::new();
        t.insert("GET", &RouteTemplate::parse("/a/{id}").unwrap(), 0)
            .unwrap();
        assert_eq!(
            t.insert("GET", &RouteTemplate::parse("/a/{id}").unwrap(), 1),
            Err(TableConflict::Duplicate { earlier: 0 })
        );
        assert!(matches!(
            t.insert("GET", &RouteTemplate::parse("/a/{name}/x").unwrap(), 2),
            Err(TableConflict::ParamName { .. })
        ));
    }

    #[test]
    fn template_errors() {
        assert!(
            RouteTemplate::parse("/{proxy+}/x")
                .unwrap_err()
                .message
                .contains("last segment")
        );
        assert!(RouteTemplate::parse("items").is_err());
        assert!(RouteTemplate::parse("/a/{b").is_err());
        assert!(RouteTemplate::parse("/a//b").is_err());
        assert!(RouteTemplate::parse("/a/x{b}").is_err());
    }
}
