//! Times a runtime in-process on a deployment directory, at several batch sizes, from the JSON
//! text of the instances (as a predict request carries them) to predictions:
//!
//!     cargo run --release -p kiln-serve --example predict_timing -- MODEL_DIR INSTANCES.json
//!
//! INSTANCES.json is a JSON list of instances; batches are cut from it (cycling when short).
//! Two columns: parsing the text into values and predicting on them, and `predict_json`, which
//! the ONNX runtime reads straight into tensors.

use std::time::Instant;

use serde_json::value::RawValue;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, instances] = args.as_slice() else {
        return Err("usage: predict_timing MODEL_DIR INSTANCES.json".into());
    };
    let dir = std::path::Path::new(dir);
    let runtime = kiln_serve::load(dir, kiln_serve::detect(dir)?, &Default::default())?;
    let text = std::fs::read_to_string(instances)?;
    let pool: Vec<&RawValue> = serde_json::from_str(&text)?;
    let time = |call: &dyn Fn() -> Result<(), kiln_serve::ServeError>| {
        let (mut calls, started) = (0u32, Instant::now());
        while started.elapsed().as_secs_f64() < 2.0 {
            call()?;
            calls += 1;
        }
        Ok::<_, kiln_serve::ServeError>(started.elapsed().as_secs_f64() / f64::from(calls))
    };
    println!("| batch | values: µs per call | rows/s | text: µs per call | rows/s |");
    println!("|---|---|---|---|---|");
    for size in [1, 64, 512] {
        let batch: Vec<&str> = pool
            .iter()
            .map(|text| text.get())
            .cycle()
            .take(size)
            .collect();
        let values = time(&|| {
            runtime.predict(&kiln_serve::parse_instances(&batch)?)?;
            Ok(())
        })?;
        let text = time(&|| {
            runtime.predict_json(&batch)?;
            Ok(())
        })?;
        println!(
            "| {size} | {:.1} | {:.0} | {:.1} | {:.0} |",
            values * 1e6,
            size as f64 / values,
            text * 1e6,
            size as f64 / text
        );
    }
    Ok(())
}
