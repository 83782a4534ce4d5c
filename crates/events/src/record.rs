//! TFRecord framing: `u64` length, masked CRC-32C of the length, the bytes, masked CRC-32C of the
//! bytes. [`Records`] streams a whole file (plain or already decompressed); [`frame`] writes one.

use std::io::Read;

use crate::EventsError;

/// The checksum TFRecord stores: CRC-32C, rotated and offset so that checksums of checksums differ.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The data length a 12-byte record header declares, or `None` when its checksum is wrong.
pub(crate) fn header_length(header: &[u8]) -> Option<u64> {
    let (length, crc) = header.split_at_checked(8)?;
    let stored = u32::from_le_bytes(crc.get(..4)?.try_into().ok()?);
    (stored == masked_crc(length))
        .then(|| u64::from_le_bytes(length.try_into().unwrap_or_default()))
}

/// Whether `data` matches the 4-byte checksum stored after it.
pub(crate) fn body_matches(data: &[u8], crc: &[u8]) -> bool {
    <[u8; 4]>::try_from(crc).is_ok_and(|crc| u32::from_le_bytes(crc) == masked_crc(data))
}

/// One record, framed.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut framed = Vec::with_capacity(data.len() + 16);
    framed.extend_from_slice(&length);
    framed.extend_from_slice(&masked_crc(&length).to_le_bytes());
    framed.extend_from_slice(data);
    framed.extend_from_slice(&masked_crc(data).to_le_bytes());
    framed
}

/// Longest record [`Records`] accepts: a corrupt length must not allocate the machine away.
pub const MAX_RECORD_BYTES: u64 = 256 << 20;

/// The records of a TFRecord stream, in order. A damaged record ends the stream with
/// [`EventsError::Corrupt`], as does a file cut short inside a record.
pub struct Records<R> {
    reader: R,
    offset: u64,
    failed: bool,
}

impl<R: Read> Records<R> {
    /// Reads records from `reader` (wrap gzip files in a decoder first).
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            failed: false,
        }
    }

    fn next_record(&mut self) -> Result<Option<Vec<u8>>, EventsError> {
        let mut header = [0u8; 12];
        let mut filled = 0;
        while filled < header.len() {
            match self.reader.read(&mut header[filled..])? {
                0 if filled == 0 => return Ok(None),
                0 => return Err(EventsError::Corrupt(self.offset)),
                read => filled += read,
            }
        }
        let Some(length) = header_length(&header).filter(|length| *length <= MAX_RECORD_BYTES)
        else {
            return Err(EventsError::Corrupt(self.offset));
        };
        let mut body = vec![0u8; length as usize + 4];
        self.reader
            .read_exact(&mut body)
            .map_err(|_| EventsError::Corrupt(self.offset))?;
        let crc = body.split_off(length as usize);
        if !body_matches(&body, &crc) {
            return Err(EventsError::Corrupt(self.offset));
        }
        self.offset += 16 + length;
        Ok(Some(body))
    }
}

impl<R: Read> Iterator for Records<R> {
    type Item = Result<Vec<u8>, EventsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_record();
        self.failed = next.is_err();
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_records_and_stops_at_damage() {
        let mut file = Vec::new();
        for data in [&b"first"[..], b"", b"third record"] {
            file.extend(frame(data));
        }
        let read: Vec<Vec<u8>> = Records::new(&file[..]).map(Result::unwrap).collect();
        assert_eq!(
            read,
            [b"first".to_vec(), Vec::new(), b"third record".to_vec()]
        );
        let cut = &file[..file.len() - 3];
        let results: Vec<_> = Records::new(cut).collect();
        assert_eq!(results.len(), 3);
        assert!(
            matches!(results[2], Err(EventsError::Corrupt(_))),
            "cut short"
        );
        let mut damaged = file.clone();
        damaged[14] ^= 1;
        let results: Vec<_> = Records::new(&damaged[..]).collect();
        assert_eq!(results.len(), 1, "nothing after the damage");
        assert!(results[0].is_err());
    }
}
