//! `wrenvnet adapt`: the documented JSON answer for the example problem, exit code 3
//! for an infeasible problem (with the best-effort plan), 1 for a malformed file.

mod common;

use common::*;
use std::process::Command;

fn adapt(input: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(wrenvnet_bin())
        .args(["adapt", "--input"])
        .arg(input)
        .args(extra)
        .output()
        .expect("spawn wrenvnet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_problem_gives_the_documented_answer() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/adapt.example.json");
    for algo in ["gh", "sa", "gh+sa", "exact"] {
        let (code, out, err) = adapt(&example, &["--json", "--algo", algo, "--seed", "3"]);
        assert_eq!(code, 0, "{algo}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(v["algo"], algo);
        assert_eq!(v["feasible"], true);
        for key in [
            "objective",
            "mapping",
            "paths",
            "migrations",
            "elapsed_ms",
            "actions",
        ] {
            assert!(v.get(key).is_some(), "{algo}: missing {key}");
        }
        // vm1 and vm4 are pinned on A and C; the thin A-C link (100) cannot carry 300,
        // so their traffic goes through B.
        assert_eq!(v["mapping"]["vm1"], "A");
        assert_eq!(v["mapping"]["vm4"], "C");
        let p = v["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["src"] == "vm1")
            .unwrap();
        assert_eq!(p["hosts"], serde_json::json!(["A", "B", "C"]), "{algo}");
    }
    // Human output names the same plan.
    let (code, out, _) = adapt(&example, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("A -> B -> C"), "{out}");
}

#[test]
fn infeasible_problem_exits_3_with_reasons_and_a_plan() {
    let dir = TempDir::new("adapt-inf");
    let p = write_file(
        &dir.0,
        "p.json",
        r#"{"hosts":[{"name":"A","capacity":1},{"name":"B","capacity":1}],
            "links":[{"from":"A","to":"B","bw_mbps":100}],
            "vms":[{"name":"x","host":"A","pinned":true},{"name":"y","host":"B","pinned":true}],
            "demands":[{"src":"x","dst":"y","mbps":150}]}"#,
    );
    let (code, out, _) = adapt(&p, &["--json"]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["feasible"], false);
    assert!(!v["violations"].as_array().unwrap().is_empty());
    assert_eq!(v["paths"][0]["hosts"], serde_json::json!(["A", "B"]));
}

#[test]
fn malformed_problems_get_a_clear_error() {
    let dir = TempDir::new("adapt-bad");
    let p = write_file(&dir.0, "p.json", r#"{"hosts":[{"name":"A"}]"#);
    let (code, _, err) = adapt(&p, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid problem file") && !err.contains("panicked"),
        "{err}"
    );
    let p = write_file(
        &dir.0,
        "q.json",
        r#"{"hosts":[{"name":"A","capacity":1}],"vms":[{"name":"x","host":"Q"}]}"#,
    );
    let (code, _, err) = adapt(&p, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown host \"Q\""), "{err}");
    let (code, _, err) = adapt(&p, &["--algo", "magic"]);
    assert_eq!(code, 2, "{err}");
}
