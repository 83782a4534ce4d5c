//! `tf.train.Example`, the record of TFRecord input files: a map from feature name to a list of
//! bytes, floats or integers. Decoded (and, for tests and tools, encoded) by hand like the events:
//! `Example.features` (1) → `Features.feature` (1, map entries: key 1, value 2) → `Feature`
//! `bytes_list` (1) | `float_list` (2) | `int64_list` (3), each with repeated `value` (1), packed or not.

use crate::proto::{Field, all_fields, put_bytes, put_varint};

/// The values of one feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    /// `bytes_list`: strings or raw bytes.
    Bytes(Vec<Vec<u8>>),
    /// `float_list`.
    Floats(Vec<f32>),
    /// `int64_list`.
    Ints(Vec<i64>),
}

/// The features of a serialized Example, in the order stored; `None` when the bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, Feature)>> {
    let mut features = Vec::new();
    for (number, field) in all_fields(bytes)? {
        let (1, Field::Bytes(map)) = (number, field) else {
            continue;
        };
        for (number, field) in all_fields(map)? {
            let (1, Field::Bytes(entry)) = (number, field) else {
                continue;
            };
            let (mut name, mut value) = (None, None);
            for (number, field) in all_fields(entry)? {
                match (number, field) {
                    (1, Field::Bytes(key)) => name = Some(String::from_utf8(key.to_vec()).ok()?),
                    (2, Field::Bytes(feature)) => value = Some(feature_values(feature)?),
                    _ => {}
                }
            }
            features.push((name?, value.unwrap_or(Feature::Floats(Vec::new()))));
        }
    }
    Some(features)
}

fn feature_values(feature: &[u8]) -> Option<Feature> {
    let mut found = Feature::Floats(Vec::new());
    for (number, field) in all_fields(feature)? {
        let Field::Bytes(list) = field else {
            return None;
        };
        found = match number {
            1 => Feature::Bytes(
                all_fields(list)?
                    .into_iter()
                    .filter_map(|(number, field)| match (number, field) {
                        (1, Field::Bytes(value)) => Some(value.to_vec()),
                        _ => None,
                    })
                    .collect(),
            ),
            2 => {
                let mut values = Vec::new();
                for (_, field) in all_fields(list)? {
                    match field {
                        Field::Fixed32(bits) => values.push(f32::from_bits(bits)),
                        Field::Bytes(packed) if packed.len() % 4 == 0 => {
                            values.extend(packed.chunks_exact(4).map(|chunk| {
                                f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])
                            }))
                        }
                        _ => return None,
                    }
                }
                Feature::Floats(values)
            }
            3 => {
                let mut values = Vec::new();
                for (_, field) in all_fields(list)? {
                    match field {
                        Field::Varint(value) => values.push(value as i64),
                        Field::Bytes(mut packed) => {
                            while !packed.is_empty() {
                                values.push(crate::proto::varint(&mut packed)? as i64);
                            }
                        }
                        _ => return None,
                    }
                }
                Feature::Ints(values)
            }
            _ => found,
        };
    }
    Some(found)
}

/// Serializes an Example (lists packed, as TensorFlow writes them).
pub fn encode(features: &[(&str, Feature)]) -> Vec<u8> {
    let mut map = Vec::new();
    for (name, feature) in features {
        let mut list = Vec::new();
        let number = match feature {
            Feature::Bytes(values) => {
                for value in values {
                    put_bytes(&mut list, 1, value);
                }
                1
            }
            Feature::Floats(values) => {
                let packed: Vec<u8> = values
                    .iter()
                    .flat_map(|value| value.to_le_bytes())
                    .collect();
                put_bytes(&mut list, 1, &packed);
                2
            }
            Feature::Ints(values) => {
                let mut packed = Vec::new();
                for value in values {
                    put_varint(&mut packed, *value as u64);
                }
                put_bytes(&mut list, 1, &packed);
                3
            }
        };
        let mut value = Vec::new();
        put_bytes(&mut value, number, &list);
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, name.as_bytes());
        put_bytes(&mut entry, 2, &value);
        put_bytes(&mut map, 1, &entry);
    }
    let mut example = Vec::new();
    put_bytes(&mut example, 1, &map);
    example
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_unpacked_lists() {
        let features = vec![
            ("age", Feature::Ints(vec![39, -1])),
            ("hours", Feature::Floats(vec![40.5])),
            ("workclass", Feature::Bytes(vec![b"State-gov".to_vec()])),
        ];
        let bytes = encode(&features);
        let decoded = decode(&bytes).unwrap();
        let expected: Vec<(String, Feature)> = features
            .into_iter()
            .map(|(name, feature)| (name.to_string(), feature))
            .collect();
        assert_eq!(decoded, expected);
        // An unpacked int64_list (older writers): Feature{int64_list{value: 7, value: 8}}.
        let unpacked = [
            0x0a, 0x0d, 0x0a, 0x0b, 0x0a, 0x01, b'n', 0x12, 0x06, 0x1a, 0x04, 0x08, 0x07, 0x08,
            0x08,
        ];
        assert_eq!(
            decode(&unpacked).unwrap(),
            [("n".to_string(), Feature::Ints(vec![7, 8]))]
        );
        assert!(decode(&bytes[..bytes.len() - 2]).is_none(), "cut short");
    }
}
