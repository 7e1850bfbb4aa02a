//! VADAPT's problem JSON (`wrenvnet adapt`): any text either fails to parse, is
//! refused with a reason, or is solved; never a panic. The solver's budget is kept
//! small so that a run is about the input, not the search.
#![no_main]

use analysis::vadapt::{self, Algo, Options, Problem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    let Ok(problem) = serde_json::from_slice::<Problem>(text) else {
        return;
    };
    for algo in [Algo::Greedy, Algo::Anneal] {
        let opts = Options {
            algo,
            seed: 1,
            iterations: Some(200),
            budget_ms: Some(50),
        };
        let _ = vadapt::solve(&problem, &opts);
    }
});
