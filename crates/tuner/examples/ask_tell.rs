//! The tuner over stdin and stdout, one JSON object per line, for `bench/hpo.py`.
//!
//! The first line configures the study:
//! `{"params": [{"name", "type": "DOUBLE"|"INTEGER"|"DISCRETE"|"CATEGORICAL", "min", "max",
//! "values", "scale": "LINEAR"|"LOG"|"REVERSE_LOG", "parent", "parentValues"}], "goal": "MINIMIZE", "algorithm": "BAYESIAN"|"RANDOM", "seed": 1}`,
//! or with `"metrics": [{"goal": "MINIMIZE", "threshold": 0.5}, ...]` in place of `goal` for
//! several metrics (a threshold makes one a safety constraint).
//! Every later line asks: `{"completed": [{"values": [...], "objective": y}], "pending": [[...]],
//! "count": 1}` (`"metrics": [y1, y2]` in place of `objective` for several metrics) and is answered
//! `{"suggestions": [[...]], "seconds": 0.01}`. An inactive conditional parameter's value is `null`.

use std::io::{BufRead, Write};
use std::time::Instant;

use kiln_tuner::{
    Algorithm, Condition, Domain, Goal, Metric, Param, Scale, Space, Trial, Tuner, Value,
};
use serde_json::{Value as Json, json};

fn value(json: &Json) -> Value {
    match json {
        Json::String(text) => Value::Category(text.clone()),
        Json::Null => Value::Inactive,
        other => Value::Number(other.as_f64().unwrap_or(f64::NAN)),
    }
}

/// A parameter; `"parent": NAME, "parentValues": [...]` makes it conditional on an earlier one.
fn param(json: &Json, earlier: &[Param]) -> Param {
    let scale = match json["scale"].as_str() {
        Some("LOG") => Scale::Log,
        Some("REVERSE_LOG") => Scale::ReverseLog,
        _ => Scale::Linear,
    };
    let number = |key: &str| json[key].as_f64().unwrap_or(f64::NAN);
    let domain = match json["type"].as_str() {
        Some("INTEGER") => Domain::Integer {
            min: number("min") as i64,
            max: number("max") as i64,
            scale,
        },
        Some("DISCRETE") => Domain::Discrete {
            values: json["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Json::as_f64)
                .collect(),
            scale,
        },
        Some("CATEGORICAL") => Domain::Categorical {
            values: json["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        },
        _ => Domain::Double {
            min: number("min"),
            max: number("max"),
            scale,
        },
    };
    let condition = json["parent"].as_str().map(|parent| Condition {
        parent: earlier
            .iter()
            .position(|param| param.name == parent)
            .unwrap_or(usize::MAX),
        values: json["parentValues"]
            .as_array()
            .into_iter()
            .flatten()
            .map(value)
            .collect(),
    });
    Param {
        name: json["name"].as_str().unwrap_or_default().to_string(),
        domain,
        condition,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let config: Json = serde_json::from_str(&lines.next().ok_or("no configuration line")??)?;
    let space = Space::new(config["params"].as_array().ok_or("params")?.iter().fold(
        Vec::new(),
        |mut params, json| {
            params.push(param(json, &params));
            params
        },
    ))?;
    let goal = |json: &Json| {
        if json["goal"] == "MINIMIZE" {
            Goal::Minimize
        } else {
            Goal::Maximize
        }
    };
    let metrics: Vec<Metric> = match config["metrics"].as_array() {
        Some(metrics) => metrics
            .iter()
            .map(|metric| Metric {
                goal: goal(metric),
                threshold: metric["threshold"].as_f64(),
            })
            .collect(),
        None => vec![Metric::objective(goal(&config))],
    };
    let algorithm = match config["algorithm"].as_str() {
        Some("RANDOM") => Algorithm::Random,
        Some("GRID") => Algorithm::Grid,
        _ => Algorithm::Bayesian,
    };
    let tuner = Tuner::with_metrics(
        space,
        metrics,
        algorithm,
        config["seed"].as_u64().unwrap_or(0),
    )?;
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let request: Json = serde_json::from_str(&line?)?;
        let completed: Vec<Trial> = request["completed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|trial| Trial {
                values: trial["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(value)
                    .collect(),
                metrics: match trial["metrics"].as_array() {
                    Some(values) => values.iter().map(Json::as_f64).collect(),
                    None => trial["objective"].as_f64().map(|objective| vec![objective]),
                },
            })
            .collect();
        let pending: Vec<Vec<Value>> = request["pending"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|values| values.as_array().into_iter().flatten().map(value).collect())
            .collect();
        let started = Instant::now();
        let suggestions = tuner.suggest(
            &completed,
            &pending,
            request["count"].as_u64().unwrap_or(1) as usize,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let suggestions: Vec<Vec<Json>> = suggestions
            .iter()
            .map(|values| {
                values
                    .iter()
                    .map(|value| match value {
                        Value::Number(number) => json!(number),
                        Value::Category(category) => json!(category),
                        Value::Inactive => Json::Null,
                    })
                    .collect()
            })
            .collect();
        writeln!(
            stdout,
            "{}",
            json!({"suggestions": suggestions, "seconds": seconds})
        )?;
        stdout.flush()?;
    }
    Ok(())
}
