//! The simulator's event log: one JSON object per line (hosts' applied revisions, the
//! world's link changes), for the bench to join with the controller's events.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::Value;

#[derive(Clone)]
pub struct Events(Option<Arc<Mutex<BufWriter<File>>>>);

impl Events {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Events(Some(Arc::new(Mutex::new(BufWriter::new(f))))))
    }

    /// Events that go nowhere.
    pub fn none() -> Self {
        Events(None)
    }

    pub fn write(&self, v: Value) {
        if let Some(w) = &self.0 {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            if writeln!(w, "{v}").is_err() {
                log::warn!("fleet-sim: an event could not be written");
            }
        }
    }

    /// Makes what was written readable (every second, and at the end).
    pub fn flush(&self) {
        if let Some(w) = &self.0 {
            let _ = w.lock().unwrap_or_else(|e| e.into_inner()).flush();
        }
    }
}
