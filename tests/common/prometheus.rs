//! The Prometheus text format (0.0.4) as the tests read a scrape: every sample with
//! its family's type and its labels, checked against the format as it is parsed.

use std::collections::BTreeMap;

/// One sample of a Prometheus text exposition: metric name, its family's type, labels,
/// value.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub kind: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (0.0.4): every sample's family has a `# TYPE`
/// before it (a histogram's `_bucket`, `_sum` and `_count` series under the
/// histogram's), counters are named `*_total`, label values are unescaped.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(l.strip_suffix('}').expect("labels end in }")),
            ),
            None => (series, BTreeMap::new()),
        };
        // A histogram's series are its family's name with a suffix.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("no # TYPE for {name}"));
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
        out.push(Sample {
            name: name.to_string(),
            kind: kind.clone(),
            labels,
            value: value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}")),
        });
    }
    out
}

/// `k="v",k2="v2"` with `\\`, `\"` and `\n` escapes in the values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {key} in {text}");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?} in {text}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}
