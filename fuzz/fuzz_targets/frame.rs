//! The frame dissector and the worker's vector record path: neither may panic on any
//! frame, and where the vector path answers, its record is the dissector's.
#![no_main]

use analysis::record::{Direction, Record, FLAG_VXLAN, NO_HOST};
use analysis::wire::frame::{dissect, dissect_snapped};
use dataplane::record_sse::record_words;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let (d, v) = dissect(frame, true);
    let full = Record::from_dissection(7, &d, v, Direction::FromNic, 3, (NO_HOST, NO_HOST));
    let _ = dissect(frame, false);
    let _ = dissect_snapped(frame, frame.len() + 100, true);
    if let Some((words, vxlan)) = record_words(frame, 7, Direction::FromNic, 3) {
        let r = Record::from_words(words);
        assert_eq!(r, full, "{frame:02x?}");
        assert_eq!(vxlan, r.flags & FLAG_VXLAN != 0);
    }
});
