//! Online prediction bodies (api-surface.md §A.9).

use std::ops::Range;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cursor::{Cursor, is_space};

/// `{"instances": [...], "signature_name": "..."}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The inputs, one per prediction, as the JSON text the client sent.
    #[schemars(with = "Vec<Value>")]
    pub instances: Instances,
    /// The signature to use (Kiln models have one, `serving_default`).
    #[serde(default)]
    pub signature_name: Option<String>,
}

impl PredictRequest {
    /// Reads the common body, `{"instances": [...]}` with at most a plain `signature_name`,
    /// without parsing the instances: each is found by its brackets and quotes and left to the
    /// model's runtime, which reads it as JSON (and refuses it by its index when it is not).
    /// Checking every instance as JSON here, then reading it again in the runtime, cost a seventh
    /// of the server's CPU at 64 instances per request.
    ///
    /// `None` for any other body: serde then reads it and words its errors.
    pub fn split(body: &str) -> Option<Self> {
        let mut cursor = Cursor::new(body);
        cursor.expect(b'{')?;
        let (mut spans, mut signature_name) = (None, None);
        loop {
            let key = cursor.string()?;
            cursor.expect(b':')?;
            match key {
                "instances" if spans.is_none() => spans = Some(instances(&mut cursor)?),
                "signature_name" if signature_name.is_none() => {
                    signature_name = Some(cursor.string()?.to_owned());
                }
                _ => return None,
            }
            if !cursor.more(b'}')? {
                break;
            }
        }
        cursor.skip_space();
        let spans = spans?;
        cursor.at_end().then(|| Self {
            instances: Instances {
                text: body.to_owned(),
                spans,
            },
            signature_name,
        })
    }
}

/// A request's instances as the JSON text the client sent: one string, and each instance's span
/// in it. The model's runtime reads the text straight into its input tensors.
#[derive(Debug, Clone, Default)]
pub struct Instances {
    text: String,
    spans: Vec<Range<usize>>,
}

impl Instances {
    /// Instances from each one's JSON text.
    pub fn from_texts(texts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let mut instances = Self::default();
        for text in texts {
            let start = instances.text.len();
            instances.text.push_str(text.as_ref());
            instances.spans.push(start..instances.text.len());
        }
        instances
    }

    /// How many instances there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of JSON text the instances are read from (the request body).
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Each instance's JSON text, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.spans
            .iter()
            .map(|span| self.text.get(span.clone()).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = Vec::<Box<RawValue>>::deserialize(deserializer)?;
        Ok(Self::from_texts(texts.iter().map(|text| text.get())))
    }
}

/// The `instances` list at the cursor: each element's span, found by its brackets and quotes.
fn instances(cursor: &mut Cursor) -> Option<Vec<Range<usize>>> {
    cursor.expect(b'[')?;
    let mut spans = Vec::new();
    if cursor.eat(b']')? {
        return Some(spans);
    }
    loop {
        cursor.skip_space();
        let start = cursor.at;
        cursor.skip_value()?;
        let end = start
            + cursor.bytes()[start..cursor.at]
                .iter()
                .rposition(|&byte| !is_space(byte))?
            + 1;
        spans.push(start..end);
        if !cursor.more(b']')? {
            return Some(spans);
        }
    }
}

/// `{"predictions": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictResponse {
    /// One output per instance, in order.
    pub predictions: Vec<Value>,
}

/// The prediction-error shape: `{"error": "Prediction failed: ..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictionErrorBody {
    /// The message, a string (not an object as in platform errors).
    pub error: String,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A request's instance texts and signature name.
    type Read = Option<(Vec<String>, Option<String>)>;

    /// The body read fast, and as serde reads it.
    fn both(body: &str) -> (Read, Read) {
        let read = |request: PredictRequest| {
            let texts = request.instances.iter().map(str::to_owned).collect();
            (texts, request.signature_name)
        };
        let fast = PredictRequest::split(body).map(read);
        let slow = serde_json::from_str::<PredictRequest>(body).ok().map(read);
        (fast, slow)
    }

    #[test]
    fn splits_the_common_body_as_serde_reads_it() {
        for body in [
            r#"{"instances": [1, 2.5e3, -0, true, null, "a", [], {}]}"#,
            " {\n \"instances\" :\t[ {\"a\": \"],}\\\"{[\", \"b\": [1, [2, {\"c\": []}]]} , \"x,y\" , [ ] ] ,\
             \"signature_name\": \"serving_default\" } ",
            r#"{"signature_name": "s", "instances": []}"#,
            r#"{"instances": [{"cat": [5, 2, 5, 42, 4, 3, 2, 39], "num": [-0.9957048892974854]}]}"#,
            r#"{"instances": ["é]", {"ü": "\u005d"}]}"#,
        ] {
            let (fast, slow) = both(body);
            assert!(fast.is_some(), "{body}");
            assert_eq!(fast, slow, "{body}");
        }
    }

    #[test]
    fn leaves_any_other_body_to_serde() {
        for body in [
            "",
            "{}",
            "[1]",
            r#"{"instances": 5}"#,
            r#"{"instances": [1,]}"#,
            r#"{"instances": [,1]}"#,
            r#"{"instances": [1], "instances": [2]}"#,
            r#"{"instances": [1], "parameters": {}}"#,
            r#"{"instances": [1]} x"#,
            r#"{"instances": [1}"#,
            r#"{"instances": [{"a": 1]}"#,
            r#"{"instances": ["open]}"#,
            r#"{"signature_name": "a\"b", "instances": []}"#,
            r#"{"signature_name": 1, "instances": []}"#,
            "{\"instances\": [1], \"signature_name\": \"a\u{1}b\"}",
            "{\"instances\": [1], \"signature_name\": \"a\t\"}",
            "{\u{c}\"instances\": [1]}",
        ] {
            assert_eq!(both(body).0, None, "{body}");
        }
    }

    #[test]
    fn keeps_what_is_not_json_in_an_instance_for_the_runtime_to_refuse() {
        let request = PredictRequest::split("{\"instances\": [1 \u{c}, [2}]}").unwrap();
        let texts: Vec<&str> = request.instances.iter().collect();
        assert_eq!(texts, ["1 \u{c}", "[2}"]);
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            "[\\[\\]{}\",:\\\\ aé\\n]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-z\\[\\]\"]{0,4}", inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn splits_any_instances_as_serde_does(instances in prop::collection::vec(json(), 0..8)) {
            let body = serde_json::to_string_pretty(&serde_json::json!({ "instances": instances }))
                .unwrap();
            let (fast, slow) = both(&body);
            prop_assert!(fast.is_some());
            prop_assert_eq!(fast, slow);
        }
    }
}
