//! `views/<host>`: the documents the HTTP API serves, gathered on the main lcore into
//! one value no larger than `MAX_VALUE_BYTES` (etcd refuses large requests, and a
//! value that size costs every reader). Too big: the matrix goes first, then the paths
//! (both are rebuilt from traffic within seconds); still too big, nothing is sent.

use serde_json::Value;

use crate::cluster::HostViews;

/// What a publication came to.
#[derive(Debug, PartialEq)]
pub enum Bounded {
    /// The JSON text, whole.
    Whole(String),
    /// The JSON text without the matrix (and maybe the paths).
    Trimmed(String),
    /// Too big even without them: its size.
    TooBig(usize),
}

/// `views` as JSON of at most `max` bytes.
#[cold]
pub fn bounded(mut views: HostViews, max: usize) -> Bounded {
    let text = to_text(&views);
    if text.len() <= max {
        return Bounded::Whole(text);
    }
    views.matrix = Value::Null;
    let text = to_text(&views);
    if text.len() <= max {
        return Bounded::Trimmed(text);
    }
    views.paths = Value::Null;
    let text = to_text(&views);
    if text.len() <= max {
        return Bounded::Trimmed(text);
    }
    Bounded::TooBig(text.len())
}

fn to_text(v: &HostViews) -> String {
    serde_json::to_string(v).expect("JSON values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn views(matrix: usize, paths: usize, rules: usize) -> HostViews {
        HostViews {
            host: "h0".into(),
            at_unix_s: 1.0,
            rules: json!("r".repeat(rules)),
            links: json!([]),
            vms: json!([]),
            paths: json!("p".repeat(paths)),
            matrix: json!("m".repeat(matrix)),
            stats: json!({}),
            locations: Value::Null,
        }
    }

    fn parse(text: &str) -> HostViews {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_matrix_then_the_paths_go_and_nothing_is_sent_past_the_bound() {
        let Bounded::Whole(t) = bounded(views(10, 10, 10), 1000) else {
            panic!("small views are sent whole");
        };
        assert_eq!(parse(&t), views(10, 10, 10));
        let Bounded::Trimmed(t) = bounded(views(900, 10, 10), 1000) else {
            panic!("a big matrix is dropped");
        };
        let v = parse(&t);
        assert!(t.len() <= 1000);
        assert_eq!((v.matrix, v.paths), (Value::Null, json!("p".repeat(10))));
        let Bounded::Trimmed(t) = bounded(views(900, 900, 10), 1000) else {
            panic!("big paths are dropped too");
        };
        assert_eq!(parse(&t).paths, Value::Null);
        assert!(matches!(bounded(views(10, 10, 2000), 1000), Bounded::TooBig(n) if n > 2000));
    }
}
