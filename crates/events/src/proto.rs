//! The few protocol-buffer wire-format pieces the TensorFlow messages here need.

/// A protobuf field's payload.
pub(crate) enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// The next field of a message, advancing `bytes`; `None` at the end or at malformed input.
fn next_field<'a>(bytes: &mut &'a [u8]) -> Option<(u64, Field<'a>)> {
    let key = varint(bytes)?;
    let field = match key & 7 {
        0 => Field::Varint(varint(bytes)?),
        1 => {
            let (head, rest) = bytes.split_at_checked(8)?;
            *bytes = rest;
            Field::Fixed64(u64::from_le_bytes(head.try_into().ok()?))
        }
        2 => {
            let length = usize::try_from(varint(bytes)?).ok()?;
            let (head, rest) = bytes.split_at_checked(length)?;
            *bytes = rest;
            Field::Bytes(head)
        }
        5 => {
            let (head, rest) = bytes.split_at_checked(4)?;
            *bytes = rest;
            Field::Fixed32(u32::from_le_bytes(head.try_into().ok()?))
        }
        _ => return None,
    };
    Some((key >> 3, field))
}

/// The fields of one message; stops quietly at malformed input (events are read leniently).
pub(crate) fn fields(mut bytes: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    std::iter::from_fn(move || next_field(&mut bytes))
}

/// Every field of one message, or `None` when any part of it is malformed (input records are not).
pub(crate) fn all_fields(mut bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        found.push(next_field(&mut bytes)?);
    }
    Some(found)
}

pub(crate) fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (first, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(first & 0x7f) << shift;
        if first & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

pub(crate) fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn put_fixed64(out: &mut Vec<u8>, field: u64, bits: u64) {
    put_key(out, field, 1);
    out.extend_from_slice(&bits.to_le_bytes());
}
