//! Times `ModelRuntime::predict` in-process on a deployment directory, at several batch sizes:
//!
//!     cargo run --release -p kiln-serve --example predict_timing -- MODEL_DIR INSTANCES.json
//!
//! INSTANCES.json is a JSON list of instances; batches are cut from it (cycling when short).

use std::time::Instant;

use serde_json::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, instances] = args.as_slice() else {
        return Err("usage: predict_timing MODEL_DIR INSTANCES.json".into());
    };
    let dir = std::path::Path::new(dir);
    let runtime = kiln_serve::load(dir, kiln_serve::detect(dir)?)?;
    let pool: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(instances)?)?;
    println!("| batch | µs per call | rows/s |");
    println!("|---|---|---|");
    for size in [1, 64, 512] {
        let batch: Vec<Value> = pool.iter().cycle().take(size).cloned().collect();
        let (mut calls, started) = (0u32, Instant::now());
        while started.elapsed().as_secs_f64() < 2.0 {
            runtime.predict(&batch)?;
            calls += 1;
        }
        let per_call = started.elapsed().as_secs_f64() / f64::from(calls);
        println!(
            "| {size} | {:.1} | {:.0} |",
            per_call * 1e6,
            size as f64 / per_call
        );
    }
    Ok(())
}
