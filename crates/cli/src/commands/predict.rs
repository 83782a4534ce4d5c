//! `kiln predict` and `kiln explain`.

use serde_json::Value;

use crate::PredictArgs;
use crate::client::Context;
use crate::output;

/// Sends instances to a model or version and prints the predictions.
pub fn run(args: PredictArgs, context: &Context) -> anyhow::Result<()> {
    let response = send(&args, "predict", context)?;
    print_predictions(context.format.as_ref(), &response);
    Ok(())
}

/// Sends instances to `:explain` and prints each instance's attributions (JSON by default, as
/// `gcloud beta ai-platform explain` does).
pub fn explain(args: PredictArgs, context: &Context) -> anyhow::Result<()> {
    let response = send(&args, "explain", context)?;
    output::print_resource(
        Some(context.format.as_ref().unwrap_or(&output::Format::Json)),
        &response,
    );
    Ok(())
}

fn send(args: &PredictArgs, verb: &str, context: &Context) -> anyhow::Result<Value> {
    let mut body = args.instances.request()?;
    if let Some(signature) = &args.signature_name {
        body["signature_name"] = Value::String(signature.clone());
    }
    let path = match &args.version {
        Some(version) => format!("models/{}/versions/{version}:{verb}", args.model),
        None => format!("models/{}:{verb}", args.model),
    };
    context.client().post(&path, &body)
}

/// Prints predictions as gcloud does: a table whose columns are the prediction keys.
pub fn print_predictions(format: Option<&output::Format>, response: &Value) {
    let predictions = response["predictions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let own_table = format.is_none_or(|format| *format == output::Format::Table(Vec::new()));
    match (own_table, predictions.first()) {
        (true, Some(Value::Object(first))) => {
            let keys: Vec<String> = first.keys().map(|key| key.to_ascii_uppercase()).collect();
            let columns: Vec<(&str, &str)> = keys
                .iter()
                .zip(first.keys())
                .map(|(header, key)| (header.as_str(), key.as_str()))
                .collect();
            print!("{}", output::table(&predictions, &columns));
        }
        (true, _) => output::print_resource(Some(&output::Format::Json), response),
        (false, _) => output::print_resource(format, response),
    }
}
