//! VADAPT on small problems whose right answer follows from first principles.

use analysis::vadapt::{solve, Algo, Options, Problem, ProblemError};

fn problem(json: &str) -> Problem {
    serde_json::from_str(json).expect("valid problem JSON")
}

fn all_algos() -> [Algo; 4] {
    [Algo::Greedy, Algo::Anneal, Algo::GreedyAnneal, Algo::Exact]
}

fn run(p: &Problem, algo: Algo) -> analysis::vadapt::Answer {
    solve(
        p,
        &Options {
            algo,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn communicating_vms_share_a_host_when_they_can() {
    let p = problem(
        r#"{"hosts":[{"name":"A","capacity":2},{"name":"B","capacity":2}],
            "links":[{"from":"A","to":"B","bw_mbps":100},{"from":"B","to":"A","bw_mbps":100}],
            "vms":[{"name":"x","host":"A"},{"name":"y","host":"B"}],
            "demands":[{"src":"x","dst":"y","mbps":50}]}"#,
    );
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(a.feasible);
        assert_eq!(a.mapping["x"], a.mapping["y"], "{algo:?}");
        // Local switching: 10000 default minus the demand.
        assert_eq!(a.objective, Some(9950.0), "{algo:?}");
        assert_eq!(a.migrations, 1, "{algo:?}: one VM moves, not both");
        assert_eq!(a.paths[0].hosts.len(), 1);
    }
}

const TRIANGLE: &str = r#"{"hosts":[{"name":"A","capacity":1},{"name":"B","capacity":1},{"name":"C","capacity":1}],
    "links":[{"from":"A","to":"B","bw_mbps":100,"latency_ms":1},
             {"from":"A","to":"C","bw_mbps":500,"latency_ms":10},
             {"from":"C","to":"B","bw_mbps":400,"latency_ms":10}],
    "vms":[{"name":"x","host":"A","pinned":true},{"name":"y","host":"B","pinned":true}],
    "demands":[{"src":"x","dst":"y","mbps":50MAXLAT}]"#;

#[test]
fn the_widest_path_goes_around_a_thin_direct_link() {
    let p = problem(&format!("{}{}", TRIANGLE.replace("MAXLAT", ""), "}"));
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(a.feasible);
        assert_eq!(a.paths[0].hosts, ["A", "C", "B"], "{algo:?}");
        assert_eq!(a.objective, Some(350.0), "{algo:?}: bottleneck 400 - 50");
    }
}

#[test]
fn a_latency_bound_forces_the_thin_direct_link() {
    let p = problem(&format!(
        "{}{}",
        TRIANGLE.replace("MAXLAT", r#","max_latency_ms":5"#),
        "}"
    ));
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(a.feasible, "{algo:?}: {:?}", a.violations);
        assert_eq!(a.paths[0].hosts, ["A", "B"], "{algo:?}");
        assert_eq!(a.objective, Some(50.0));
    }
}

#[test]
fn the_latency_objective_takes_the_fast_path() {
    let p = problem(&format!(
        "{}{}",
        TRIANGLE.replace("MAXLAT", ""),
        r#","objective":"latency"}"#
    ));
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(a.feasible);
        assert_eq!(a.paths[0].hosts, ["A", "B"], "{algo:?}");
        assert_eq!(a.objective, Some(1.0));
    }
}

#[test]
fn too_much_demand_is_reported_infeasible_with_the_broken_link() {
    let p = problem(
        r#"{"hosts":[{"name":"A","capacity":1},{"name":"B","capacity":1}],
            "links":[{"from":"A","to":"B","bw_mbps":100}],
            "vms":[{"name":"x","host":"A","pinned":true},{"name":"y","host":"B","pinned":true}],
            "demands":[{"src":"x","dst":"y","mbps":150}]}"#,
    );
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(!a.feasible, "{algo:?}");
        assert!(
            a.violations.iter().any(|v| v.contains("link A->B")),
            "{:?}",
            a.violations
        );
        // The best-effort plan is still complete.
        assert_eq!(a.paths[0].hosts, ["A", "B"]);
    }
}

#[test]
fn pinned_vms_stay_and_capacity_holds() {
    let p = problem(
        r#"{"hosts":[{"name":"A","capacity":1},{"name":"B","capacity":3}],
            "links":[{"from":"A","to":"B","bw_mbps":1000},{"from":"B","to":"A","bw_mbps":1000}],
            "vms":[{"name":"p","host":"A","pinned":true},{"name":"q","host":"B"},{"name":"r","host":null}],
            "demands":[{"src":"p","dst":"q","mbps":10},{"src":"q","dst":"r","mbps":10},{"src":"r","dst":"p","mbps":10}]}"#,
    );
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(a.feasible);
        assert_eq!(a.mapping["p"], "A");
        assert_eq!(a.mapping["q"], "B");
        assert_eq!(a.mapping["r"], "B");
    }
}

#[test]
fn actions_are_minimal_against_the_current_paths() {
    let base = format!("{}{}", TRIANGLE.replace("MAXLAT", ""), "");
    // Already on the best path: nothing to change.
    let same = problem(&format!(
        r#"{base},"current_paths":[{{"src":"x","dst":"y","hosts":["A","C","B"]}}]}}"#
    ));
    let a = run(&same, Algo::GreedyAnneal);
    assert!(a.actions.daemons.is_empty(), "{:?}", a.actions);
    assert!(a.actions.migrations.is_empty());
    // On the direct link now: A changes its next hop and links, C gains a rule and a
    // link, B's local delivery rule is unchanged.
    let direct = problem(&format!(
        r#"{base},"current_paths":[{{"src":"x","dst":"y","hosts":["A","B"]}}]}}"#
    ));
    let a = run(&direct, Algo::GreedyAnneal);
    let d = &a.actions.daemons;
    assert!(!d.contains_key("B"), "B needs no change: {d:?}");
    let at_a = &d["A"];
    assert_eq!(at_a.add_rules.len(), 1);
    assert_eq!(at_a.add_rules[0].next_hop.as_deref(), Some("C"));
    assert_eq!(at_a.remove_rules[0].next_hop.as_deref(), Some("B"));
    assert_eq!(
        (at_a.add_links.clone(), at_a.remove_links.clone()),
        (vec!["C".to_string()], vec!["B".to_string()])
    );
    let at_c = &d["C"];
    assert_eq!(at_c.add_rules[0].next_hop.as_deref(), Some("B"));
    assert_eq!(at_c.add_links, ["B"]);
}

#[test]
fn nonsense_is_refused_with_the_reason() {
    let bad_host =
        problem(r#"{"hosts":[{"name":"A","capacity":1}],"vms":[{"name":"x","host":"Z"}]}"#);
    assert!(matches!(
        solve(&bad_host, &Options::default()),
        Err(ProblemError::UnknownHost { ref name, .. }) if name == "Z"
    ));
    let dup = problem(r#"{"hosts":[{"name":"A","capacity":2}],"vms":[{"name":"x"},{"name":"x"}]}"#);
    assert_eq!(
        solve(&dup, &Options::default()).unwrap_err(),
        ProblemError::DuplicateVm("x".into())
    );
    let pinned =
        problem(r#"{"hosts":[{"name":"A","capacity":2}],"vms":[{"name":"x","pinned":true}]}"#);
    assert!(solve(&pinned, &Options::default()).is_err());
    let negative = problem(
        r#"{"hosts":[{"name":"A","capacity":2}],"vms":[{"name":"x"},{"name":"y"}],"demands":[{"src":"x","dst":"y","mbps":-1}]}"#,
    );
    assert!(solve(&negative, &Options::default()).is_err());
    assert!(serde_json::from_str::<Problem>(r#"{"hosts":[],"vms":[],"surprise":1}"#).is_err());
}

/// A reserved demand and a heavier best-effort one from A to C, where the direct link
/// holds either but not both and the way round through B is narrower than both.
fn contested(reserved: bool) -> Problem {
    let r = if reserved {
        r#","reserved_mbps":60"#
    } else {
        ""
    };
    problem(&format!(
        r#"{{"hosts":[{{"name":"A","capacity":2}},{{"name":"B","capacity":2}},{{"name":"C","capacity":2}}],
            "links":[{{"from":"A","to":"C","bw_mbps":100}},
                     {{"from":"A","to":"B","bw_mbps":50}},{{"from":"B","to":"C","bw_mbps":50}}],
            "vms":[{{"name":"r1","host":"A","pinned":true}},{{"name":"r2","host":"C","pinned":true}},
                   {{"name":"e1","host":"A","pinned":true}},{{"name":"e2","host":"C","pinned":true}}],
            "demands":[{{"src":"e1","dst":"e2","mbps":90}},{{"src":"r1","dst":"r2","mbps":60{r}}}]}}"#
    ))
}

#[test]
fn a_reservation_holds_its_link_before_heavier_best_effort_traffic() {
    // Neither plan fits. Without a reservation the smaller shortfall wins: the heavier
    // demand direct (10 Mbit/s short through B), the other round.
    for algo in all_algos() {
        let a = run(&contested(false), algo);
        assert!(!a.feasible, "{algo:?}");
        assert_eq!(a.paths[0].hosts, ["A", "C"], "{algo:?}: best-effort direct");
        assert_eq!(a.paths[1].hosts, ["A", "B", "C"], "{algo:?}");
        assert_eq!(a.reservations_broken, 0, "{algo:?}");
    }
    // Reserved, r1->r2 keeps the direct link: best-effort takes the 40 Mbit/s shortfall.
    for algo in all_algos() {
        let a = run(&contested(true), algo);
        assert_eq!(
            a.paths[1].hosts,
            ["A", "C"],
            "{algo:?}: the reservation direct"
        );
        assert_eq!(a.paths[0].hosts, ["A", "B", "C"], "{algo:?}");
        assert_eq!(a.reservations_broken, 0, "{algo:?}");
        assert!(!a.feasible && a.violations.iter().all(|v| !v.contains("reservations")));
    }
}

#[test]
fn a_reservation_no_path_holds_is_reported_broken_and_floors_its_demand() {
    let mut p = contested(true);
    p.demands[1].reserved_mbps = 120.0;
    p.demands[1].mbps = 1.0;
    for algo in all_algos() {
        let a = run(&p, algo);
        assert_eq!(a.reservations_broken, 1, "{algo:?}");
        assert!(
            a.violations
                .iter()
                .any(|v| v.contains("reservations 120.000 >")),
            "{algo:?}: {:?}",
            a.violations
        );
    }
    let back: Problem = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back.demands[1].reserved_mbps, 120.0);
    assert!(!serde_json::to_string(&contested(false))
        .unwrap()
        .contains("reserved_mbps"));
    p.demands[1].reserved_mbps = f64::NAN;
    assert!(matches!(
        solve(&p, &Options::default()),
        Err(ProblemError::BadValue(m)) if m.contains("reserved_mbps")
    ));
}

#[test]
fn a_repair_moves_a_reservation_its_path_does_not_hold() {
    use analysis::vadapt::{repair, Previous};
    // In force without the reservation: the heavier demand direct, r1->r2 through B.
    let best_effort = contested(false);
    let in_force = run(&best_effort, Algo::GreedyAnneal);
    assert_eq!(in_force.paths[1].hosts, ["A", "B", "C"]);
    let opts = Options {
        algo: Algo::GreedyAnneal,
        ..Default::default()
    };
    // The reservation made since, and (as a controller that carries its reservations
    // into the previous problem sees it) a reservation the path in force never held.
    let reserved = contested(true);
    for before in [&best_effort, &reserved] {
        let a = repair(&reserved, &Previous::new(before, &in_force), &opts).unwrap();
        assert_eq!(a.paths[1].hosts, ["A", "C"], "{:?}", a.violations);
        assert_eq!(a.paths[0].hosts, ["A", "B", "C"]);
        assert_eq!(a.reservations_broken, 0, "{:?}", a.violations);
    }
}

#[test]
fn a_reservation_counts_best_effort_that_yields_to_it_as_room() {
    // A->C measured at 37 Mbit/s (a neighbour's best-effort flows seen as cross
    // traffic), 95 of which reservations may take: 60 reserved direct are held.
    let mut p = contested(true);
    p.demands.remove(0);
    p.links[0].bw_mbps = 37.0;
    let held = run(&p, Algo::Greedy);
    assert_eq!(
        held.reservations_broken, 1,
        "measured alone: {:?}",
        held.violations
    );
    p.links[0].reservable_mbps = Some(95.0);
    for algo in all_algos() {
        let a = run(&p, algo);
        assert!(
            a.violations.iter().all(|v| !v.contains("reservations")),
            "{algo:?}"
        );
        assert_eq!(a.reservations_broken, 0, "{algo:?}");
    }
    p.links[0].reservable_mbps = Some(-1.0);
    assert!(solve(&p, &Options::default()).is_err());
}
