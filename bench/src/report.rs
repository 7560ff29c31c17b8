//! Machine-readable results. Every table row a workload prints is also
//! recorded here, as its workload (`notify`, `fanout`, ...), its row label
//! (the table's first column: `1000/s`, `saturation`, a subscription
//! count...) and its figures by name; `--json PATH` writes them at the end
//! of the run as one JSON document, which `bench/compare-json.py` reads to
//! put two runs (or catalogue and a peer) side by side.
//!
//! The document: `{"bench": "catalogue-bench", "build": ..., "target":
//! ..., "load": "<1, 5, 15 min load averages>", "rows": [{"workload": ...,
//! "row": ..., "figures": {"p99_us": ..., "events_per_s": ...}}, ...]}`.

use std::{path::Path, sync::Mutex};

use serde_json::{Map, Value, json};

/// The rows recorded so far in this process.
static ROWS: Mutex<Vec<Value>> = Mutex::new(Vec::new());

/// Records one row of `workload`'s table.
pub fn record(workload: &str, row: &str, figures: &[(&str, f64)]) {
    let figures: Map<String, Value> = figures
        .iter()
        .map(|&(name, value)| (name.to_string(), json!(value)))
        .collect();
    let entry = json!({ "workload": workload, "row": row, "figures": figures });
    // A poisoned lock only means another thread panicked while pushing;
    // the rows are still usable.
    ROWS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(entry);
}

/// Writes every row recorded so far to `path`, with `target` (what was
/// measured) and `build`.
pub fn write(path: &Path, target: &str, build: &str) -> std::io::Result<()> {
    let rows = ROWS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let document = json!({
        "bench": "catalogue-bench",
        "build": build,
        "target": target,
        "load": load,
        "rows": rows,
    });
    let mut text = serde_json::to_string_pretty(&document)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_rows_are_written_as_one_document() {
        record(
            "notify",
            "1000/s",
            &[("p99_us", 120.0), ("events_per_s", 999.5)],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write(&path, "catalogue", "test build").unwrap();
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["target"], "catalogue");
        let rows = value["rows"].as_array().unwrap();
        let row = rows
            .iter()
            .find(|r| r["workload"] == "notify" && r["row"] == "1000/s")
            .expect("the recorded row");
        assert_eq!(row["figures"]["p99_us"], 120.0);
        assert_eq!(row["figures"]["events_per_s"], 999.5);
    }
}
