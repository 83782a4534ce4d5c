//! Instances' JSON text read straight into input tensors: the fast path of a predict request.
//!
//! Parsing a 512-instance request into `serde_json::Value`s, then walking the values into
//! tensors, cost more than running the model on it: every number, list and key of every instance
//! became an allocation. Here the text is read once, each scalar converted and appended to its
//! input's buffer as the parser meets it.
//!
//! Only the common form is read: each instance an object keyed by input name (or, for a model
//! with one input, that input's value), each value a scalar of the input's element type or
//! rectangular nested lists of them that fit the input's shape. Anything else (`{"b64": ...}`, a
//! string for a number, a missing or repeated key, an empty or ragged list, a shape that does
//! not fit, text that is not JSON: nothing checked it before) makes [`read`] give up, and the
//! caller takes the value path ([`super::tensors`]), which accepts the instance or words its
//! error. Both paths therefore accept the same instances and build the same tensors; a test holds
//! them to it.

use kiln_api::cursor::Cursor;

use super::graph::Element;
use super::tensors::{Array, Batch, Data, Input};

/// The inputs' tensors for `instances`, in input order; `None` when an instance is not in the
/// form this path reads.
pub fn read(inputs: &[Input], instances: &[&str]) -> Option<Vec<Array>> {
    if inputs.iter().any(|input| input.batch != Batch::Dynamic) {
        return None;
    }
    let mut columns: Vec<Column> = inputs
        .iter()
        .map(|input| {
            let row: usize = input.row_shape.iter().map(|dim| dim.unwrap_or(1)).product();
            Column::new(input.element, instances.len() * row)
        })
        .collect();
    for instance in instances {
        let scanner = Scanner {
            cursor: Cursor::new(instance),
        };
        scanner.instance(&mut columns, inputs)?;
        for (column, input) in columns.iter_mut().zip(inputs) {
            column.end_instance(input)?;
        }
    }
    Some(
        columns
            .into_iter()
            .map(|column| Array {
                shape: std::iter::once(instances.len())
                    .chain(column.fixed.unwrap_or_default())
                    .collect(),
                data: column.data,
            })
            .collect(),
    )
}

/// One input's tensor as it fills, and the shape of the instance being read.
struct Column {
    data: Data,
    /// The row shape the first instance set; every later one must fill the same.
    fixed: Option<Vec<usize>>,
    /// The current instance's list length at each depth (`None` until a list there ends).
    dims: Vec<Option<usize>>,
    /// The depth of the current instance's scalars.
    leaf_depth: Option<usize>,
    /// Scalars in `data` before the current instance.
    start: usize,
    /// Whether the current instance gave this input a value.
    given: bool,
}

impl Column {
    /// An empty column with room for `capacity` scalars.
    fn new(element: Element, capacity: usize) -> Self {
        let data = match element {
            Element::F32 => Data::F32(Vec::with_capacity(capacity)),
            Element::F64 => Data::F64(Vec::with_capacity(capacity)),
            Element::I32 => Data::I32(Vec::with_capacity(capacity)),
            Element::I64 => Data::I64(Vec::with_capacity(capacity)),
            Element::Bool => Data::Bool(Vec::with_capacity(capacity)),
            Element::String => Data::String(Vec::with_capacity(capacity)),
            Element::U8 => Data::U8(Vec::with_capacity(capacity)),
        };
        Self {
            data,
            fixed: None,
            dims: Vec::new(),
            leaf_depth: None,
            start: 0,
            given: false,
        }
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    /// Checks the instance just read against the input's shape, as the value path does, and
    /// makes ready for the next.
    fn end_instance(&mut self, input: &Input) -> Option<()> {
        if !self.given {
            return None;
        }
        // Most instances fill the shape the first one set, which therefore fits.
        let repeats_first = self.fixed.as_ref().is_some_and(|fixed| {
            self.leaf_depth == Some(fixed.len())
                && self.dims.len() == fixed.len()
                && fixed
                    .iter()
                    .zip(&self.dims)
                    .all(|(dim, given)| Some(*dim) == *given)
        });
        if !repeats_first {
            let given: Vec<usize> = self
                .dims
                .get(..self.leaf_depth?)?
                .iter()
                .copied()
                .collect::<Option<_>>()?;
            let shape = input
                .fit(given, self.len() - self.start, self.fixed.as_deref())
                .ok()?;
            self.fixed.get_or_insert(shape);
        }
        self.dims.clear();
        self.leaf_depth = None;
        self.start = self.len();
        self.given = false;
        Some(())
    }

    /// A list of `length` elements ended at `depth`.
    fn list(&mut self, depth: usize, length: usize) -> Option<()> {
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            _ if length == 0 => None,
            None => {
                self.dims[depth] = Some(length);
                Some(())
            }
            Some(known) if known == length => Some(()),
            Some(_) => None,
        }
    }

    /// A scalar at `depth`: all of an instance's scalars must sit at the same depth.
    fn at_leaf(&mut self, depth: usize) -> Option<()> {
        (*self.leaf_depth.get_or_insert(depth) == depth).then_some(())
    }

    /// Appends a JSON number, converted as the value path converts it.
    fn number(&mut self, depth: usize, number: Number) -> Option<()> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::F32(values) => values.push(f32::from_number(number)?),
            Data::F64(values) => values.push(f64::from_number(number)?),
            Data::I32(values) => values.push(i32::from_number(number)?),
            Data::I64(values) => values.push(i64::from_number(number)?),
            Data::U8(values) => values.push(u8::from_number(number)?),
            Data::Bool(_) | Data::String(_) => return None,
        }
        Some(())
    }

    fn boolean(&mut self, depth: usize, value: bool) -> Option<()> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::Bool(values) => values.push(value),
            _ => return None,
        }
        Some(())
    }

    fn string(&mut self, depth: usize, value: &str) -> Option<()> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::String(values) => values.push(value.to_owned()),
            _ => return None,
        }
        Some(())
    }
}

/// An element type JSON numbers convert to, as the value path converts them: a float to an
/// integer type only when integral, an integer only when it fits (but saturating into `i64`,
/// which the value path reads through `f64` beyond i64's range).
trait FromNumber: Sized {
    fn from_number(number: Number) -> Option<Self>;
}

impl FromNumber for f64 {
    fn from_number(number: Number) -> Option<Self> {
        Some(match number {
            Number::Unsigned(value) => value as f64,
            Number::Signed(value) => value as f64,
            Number::Float(value) => value,
        })
    }
}

impl FromNumber for f32 {
    /// `None` past `f32`'s range, which the value path refuses with its message.
    fn from_number(number: Number) -> Option<Self> {
        f64::from_number(number)
            .map(|value| value as f32)
            .filter(|value| value.is_finite())
    }
}

impl FromNumber for i64 {
    fn from_number(number: Number) -> Option<Self> {
        match number {
            // Past i64's range `value as f64 as i64`, the value path's reading, saturates.
            Number::Unsigned(value) => Some(value.try_into().unwrap_or(i64::MAX)),
            Number::Signed(value) => Some(value),
            Number::Float(value) if value.fract() == 0.0 => Some(value as i64),
            Number::Float(_) => None,
        }
    }
}

impl FromNumber for i32 {
    fn from_number(number: Number) -> Option<Self> {
        narrowed(number)
    }
}

impl FromNumber for u8 {
    fn from_number(number: Number) -> Option<Self> {
        narrowed(number)
    }
}

/// A number as an integer type narrower than `i64`, when it fits.
fn narrowed<T: TryFrom<u64> + TryFrom<i64>>(number: Number) -> Option<T> {
    match number {
        Number::Unsigned(value) => value.try_into().ok(),
        other => i64::from_number(other)?.try_into().ok(),
    }
}

/// Deepest list nesting read; deeper text is left to the value path's parser, which has its own
/// limit (and this reader recurses).
const MAX_DEPTH: usize = 64;

/// A reader of one instance's JSON text, byte by byte.
///
/// A generic JSON parser driving visitors spent a third of a large request's time in its own
/// dispatch; this one knows the form it reads and converts numbers where it finds them. Numbers
/// read as serde_json reads them (an integer that fits as `u64` or `i64`, anything else as a
/// correctly rounded `f64`, `-0` as a float), so both paths see the same scalars.
///
/// `None` from any of its methods means it gave up: the value path then says what, if anything,
/// is wrong.
struct Scanner<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Scanner<'a> {
    /// One instance: an object keyed by input name, or the value of a model's only input.
    fn instance(mut self, columns: &mut [Column], inputs: &[Input]) -> Option<()> {
        match (self.cursor.peek()?, &mut *columns) {
            (b'{', _) => self.object(columns, inputs)?,
            (_, [column]) => {
                column.given = true;
                self.value(column, 0)?;
            }
            _ => return None,
        }
        self.cursor.skip_space();
        self.cursor.at_end().then_some(())
    }

    fn object(&mut self, columns: &mut [Column], inputs: &[Input]) -> Option<()> {
        self.cursor.at += 1;
        if self.cursor.eat(b'}')? {
            return Some(());
        }
        loop {
            let key = self.cursor.string()?;
            self.cursor.expect(b':')?;
            match inputs.iter().position(|input| input.name == key) {
                Some(index) if !columns[index].given => {
                    columns[index].given = true;
                    self.value(&mut columns[index], 0)?;
                }
                Some(_) => return None,
                None => self.skip(0)?,
            }
            if !self.cursor.more(b'}')? {
                return Some(());
            }
        }
    }

    /// An input's value, or an element of a list in it at `depth`, appended to its column.
    fn value(&mut self, column: &mut Column, depth: usize) -> Option<()> {
        match self.cursor.peek()? {
            b'[' if depth < MAX_DEPTH => {
                self.cursor.at += 1;
                let length = match self.cursor.peek()? {
                    b']' => {
                        self.cursor.at += 1;
                        0
                    }
                    b'-' | b'0'..=b'9' => self.numbers(column, depth + 1)?,
                    _ => {
                        let mut length = 0;
                        loop {
                            self.value(column, depth + 1)?;
                            length += 1;
                            if !self.cursor.more(b']')? {
                                break length;
                            }
                        }
                    }
                };
                column.list(depth, length)
            }
            b'"' => {
                let text = self.cursor.string()?;
                column.string(depth, text)
            }
            b't' => {
                self.cursor.literal("true")?;
                column.boolean(depth, true)
            }
            b'f' => {
                self.cursor.literal("false")?;
                column.boolean(depth, false)
            }
            b'-' | b'0'..=b'9' => {
                let number = self.number()?;
                column.number(depth, number)
            }
            _ => None,
        }
    }

    /// The rest of a list that starts with a number, at `depth`: all its elements must then be
    /// numbers (a scalar beside a list, or a number beside a string or `true`, is not a tensor),
    /// so the column's element type is matched once for the list, not once per element. Numbers
    /// are most of what a request holds.
    fn numbers(&mut self, column: &mut Column, depth: usize) -> Option<usize> {
        column.at_leaf(depth)?;
        match &mut column.data {
            Data::F32(values) => self.numbers_into(values),
            Data::F64(values) => self.numbers_into(values),
            Data::I32(values) => self.numbers_into(values),
            Data::I64(values) => self.numbers_into(values),
            Data::U8(values) => self.numbers_into(values),
            Data::Bool(_) | Data::String(_) => None,
        }
    }

    fn numbers_into<T: FromNumber>(&mut self, values: &mut Vec<T>) -> Option<usize> {
        let mut length = 0;
        loop {
            self.cursor.skip_space();
            values.push(T::from_number(self.number()?)?);
            length += 1;
            if !self.cursor.more(b']')? {
                return Some(length);
            }
        }
    }

    /// Steps over a value of a key no input has.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.cursor.peek()? {
            open @ (b'[' | b'{') if depth < MAX_DEPTH => {
                self.cursor.at += 1;
                let close = open + 2;
                if self.cursor.eat(close)? {
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.cursor.string()?;
                        self.cursor.expect(b':')?;
                    }
                    self.skip(depth + 1)?;
                    if !self.cursor.more(close)? {
                        return Some(());
                    }
                }
            }
            b'"' => self.cursor.string().map(drop),
            b't' => self.cursor.literal("true"),
            b'f' => self.cursor.literal("false"),
            b'n' => self.cursor.literal("null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }

    // Inlined into the list loop, numbers read 10% faster (a 512-instance request: 365 µs against
    // 330 µs in all).
    #[inline(always)]
    fn number(&mut self) -> Option<Number> {
        let bytes = self.cursor.bytes();
        let start = self.cursor.at;
        let negative = bytes.get(start) == Some(&b'-');
        let digits = start + usize::from(negative);
        // The digits before and after the point as one integer, exact up to 19 digits.
        let mut mantissa = 0u64;
        let mut at = digits;
        let integer_digits = match bytes.get(at) {
            Some(b'0') => {
                at += 1;
                1
            }
            Some(b'1'..=b'9') => decimal_digits(bytes, &mut at, &mut mantissa),
            _ => return None,
        };
        let mut fraction_digits = 0;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            fraction_digits = decimal_digits(bytes, &mut at, &mut mantissa);
            if fraction_digits == 0 {
                return None;
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if decimal_digits(bytes, &mut at, &mut 0) == 0 {
                return None;
            }
            exponent = true;
        }
        self.cursor.at = at;
        let exact = integer_digits + fraction_digits <= 19;
        if fraction_digits == 0 && !exponent {
            // Twenty digits may still fit a u64, which only an exact parse tells.
            let magnitude = match exact {
                true => Some(mantissa),
                false => self
                    .cursor
                    .text()
                    .get(digits..at)
                    .and_then(|text| text.parse().ok()),
            };
            match (negative, magnitude) {
                (false, Some(value)) => return Some(Number::Unsigned(value)),
                (true, Some(value)) => {
                    if let Some(value) = 0i64.checked_sub_unsigned(value).filter(|&value| value < 0)
                    {
                        return Some(Number::Signed(value));
                    }
                }
                (_, None) => {}
            }
        } else if exact
            && !exponent
            && let Some(value) = decimal_fraction(mantissa, fraction_digits)
        {
            return Some(Number::Float(if negative { -value } else { value }));
        }
        self.cursor
            .text()
            .get(start..at)
            .and_then(|text| text.parse().ok())
            // serde_json refuses a number out of f64's range rather than read it as infinite.
            .filter(|value: &f64| value.is_finite())
            .map(Number::Float)
    }
}

/// Appends the run of decimal digits at `at` in `bytes` to `value` (wrapping past 19 digits,
/// which the caller counts), steps over it and returns its length. (Eight digits at a time, by
/// SWAR, measured slower: a request's numbers are short.)
fn decimal_digits(bytes: &[u8], at: &mut usize, value: &mut u64) -> usize {
    let first = *at;
    while let Some(&digit @ b'0'..=b'9') = bytes.get(*at) {
        *value = value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
        *at += 1;
    }
    *at - first
}

/// `mantissa / 10^fraction_digits` correctly rounded, as the full parse finds it, when that is
/// quick to know; `None` leaves it to the full parse.
fn decimal_fraction(mantissa: u64, fraction_digits: usize) -> Option<f64> {
    let power = *POWERS_OF_TEN.get(fraction_digits)?;
    if mantissa <= 1 << 53 {
        // Clinger's fast path: both exact in f64, so one division rounds once, correctly.
        return Some(mantissa as f64 / power);
    }
    // Larger (the 16 and 17 digit fractions exporters print): m / 10^k = (m / 5^k) / 2^k. The
    // quotient of m * 2^64 by 5^k (below 2^52) has over 65 bits. Its top 64 bits, with a lowest
    // bit set when anything below them or a remainder is not zero, round to 53 bits as the
    // exact quotient would; scaling by a power of two is then exact.
    let five = POWERS_OF_FIVE[fraction_digits];
    let scaled = u128::from(mantissa) << 64;
    let quotient = scaled / u128::from(five);
    let inexact = scaled != quotient * u128::from(five);
    let shift = 64 - quotient.leading_zeros();
    let top = (quotient >> shift) as u64;
    let sticky = inexact || quotient & ((1 << shift) - 1) != 0;
    let scale = 1023 + shift as u64 - 64 - fraction_digits as u64;
    Some((top | u64::from(sticky)) as f64 * f64::from_bits(scale << 52))
}

/// The powers of ten that are exact in f64.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// 5^k for the same k.
const POWERS_OF_FIVE: [u64; 23] = {
    let mut powers = [1; 23];
    let mut k = 1;
    while k < powers.len() {
        powers[k] = powers[k - 1] * 5;
        k += 1;
    }
    powers
};

/// A JSON number as serde_json parses it.
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Reads the number at the start of `text` as the scanner does and as serde_json does, and
    /// holds them to the same scalar (bit for bit) or the same refusal.
    fn number_as_serde_reads_it(number: &str, after: &str) -> Result<(), TestCaseError> {
        let text = format!("{number}{after}");
        let mut scanner = Scanner {
            cursor: Cursor::new(&text),
        };
        let ours = scanner.number();
        let serde = serde_json::from_str::<serde_json::Number>(number);
        if ours.is_some() && scanner.cursor.at != number.len() {
            // Stopped early ("01"): the byte after is not a separator, and the caller gives up.
            prop_assert!(serde.is_err(), "{}", number);
            return Ok(());
        }
        match (ours, serde) {
            (Some(Number::Unsigned(ours)), Ok(serde)) => {
                prop_assert_eq!(serde.as_u64(), Some(ours))
            }
            (Some(Number::Signed(ours)), Ok(serde)) => {
                prop_assert!(serde.is_i64());
                prop_assert_eq!(serde.as_i64(), Some(ours));
            }
            (Some(Number::Float(ours)), Ok(serde)) => {
                prop_assert!(serde.is_f64(), "{}", number);
                let serde = serde.as_f64().unwrap_or(f64::NAN);
                prop_assert_eq!(
                    ours.to_bits(),
                    serde.to_bits(),
                    "{}: {} {}",
                    number,
                    ours,
                    serde
                );
            }
            (None, Err(_)) => return Ok(()),
            (ours, serde) => {
                return Err(TestCaseError::fail(format!(
                    "{number}: scanner {:?}, serde {serde:?}",
                    ours.is_some()
                )));
            }
        }
        Ok(())
    }

    /// JSON number texts: any sign, integer part, fraction and exponent, with long runs of digits.
    fn number_text() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop_oneof![Just("0".to_string()), "[1-9][0-9]{0,24}"],
            proptest::option::of("[0-9]{1,25}"),
            proptest::option::of("[eE][+-]?[0-9]{1,3}"),
        )
            .prop_map(|(negative, integer, fraction, exponent)| {
                format!(
                    "{}{integer}{}{}",
                    if negative { "-" } else { "" },
                    fraction
                        .map(|digits| format!(".{digits}"))
                        .unwrap_or_default(),
                    exponent.unwrap_or_default()
                )
            })
    }

    proptest! {
        #[test]
        fn reads_any_number_as_serde_does(number in number_text(), after in "(, 1\\]|\\]|)") {
            number_as_serde_reads_it(&number, &after)?;
        }

        #[test]
        fn reads_printed_floats_as_serde_does(bits in any::<u64>(), single in any::<f32>()) {
            let double = f64::from_bits(bits);
            if double.is_finite() {
                number_as_serde_reads_it(&double.to_string(), "]")?;
                number_as_serde_reads_it(&format!("{double:e}"), "")?;
            }
            if single.is_finite() {
                // What Python prints for a float32 read as a float64: 16 or 17 digits.
                number_as_serde_reads_it(&f64::from(single).to_string(), ", 2]")?;
                number_as_serde_reads_it(&(f64::from(single) / 1e6).to_string(), "")?;
            }
        }
    }

    #[test]
    fn reads_edge_numbers_as_serde_does() {
        for number in [
            "0",
            "-0",
            "-0.0",
            "0.0",
            "9007199254740992.5",
            "9007199254740993",
            "0.1",
            "0.3",
            "-0.9957048892974854",
            "-0.14590829610824585",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1234567890123456789",
            "12345678.12345678",
            "0.0000000000000000000001",
            "0.00000000000000000000012345678901234567",
            "99999999999999999999.5",
            "1e400",
            "4.9e-324",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "01",
            "1.",
            "-",
            "1e",
            "1.e5",
            // Just past, on and just short of halfway between two doubles.
            "9007199254740993.001",
            "9007199254740993.0",
            "9007199254740992.999",
            "18014398509481985.1",
            "18014398509481985.0",
            "18014398509481984.9",
            "-18014398509481985.01",
            // Within 2^-64 of halfway: only the division's remainder tells the side.
            "1.472245645037710271",
            "1.389809451832871745",
            "1.102227158804602980",
        ] {
            for after in ["", "]", ", 12345678]"] {
                number_as_serde_reads_it(number, after).unwrap();
            }
        }
    }

    /// Reads `batch` on both paths: whatever the fast path reads, the value path must read to
    /// the same tensors. Returns whether the fast path read it.
    fn both(inputs: &[Input], batch: &[&str]) -> bool {
        let values: Vec<Value> = batch
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect();
        let values: Vec<&Value> = values.iter().collect();
        let slow: Result<Vec<Array>, _> = inputs
            .iter()
            .map(|input| input.tensor(&values, inputs.len() == 1))
            .collect();
        match read(inputs, batch) {
            Some(fast) => {
                assert_eq!(Ok(fast), slow, "{batch:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn reads_the_common_forms_as_the_value_path_does() {
        let census = [
            Input::batched("cat", Element::I64, &[Some(2)]),
            Input::batched("num", Element::F32, &[Some(3)]),
            Input::batched("word", Element::String, &[Some(1)]),
        ];
        assert!(both(
            &census,
            &[
                r#"{"cat": [1, 2], "num": [0.5, -1, 1e3], "word": ["a"]}"#,
                r#"{"word": ["b"], "num": [0.6638542413711548, 2, 3], "cat": [3.0, 18446744073709551615], "id": {"x": 1}}"#,
            ]
        ));
        let image = [Input::batched(
            "x",
            Element::F32,
            &[Some(1), Some(2), Some(2)],
        )];
        assert!(both(
            &image,
            &[
                "[[[1, 2], [3, 4]]]",
                "[5, 6, 7, 8]",
                r#"{"x": [[[9, 0], [1, 2]]]}"#
            ]
        ));
        let ragged = [Input::batched("x", Element::I32, &[None, Some(2)])];
        assert!(both(
            &ragged,
            &["[[1, 2], [3, 4], [5, 6]]", "[[7, 8], [9, 1e1], [-3, 0]]"]
        ));
        assert!(both(
            &census,
            &[
                " { \"cat\" :\t[ -0 ,\n-9223372036854775808 ] , \"num\":[1E2,-1.5e-3,0.1], \"word\":[\"é\"], \
                 \"key\": [{\"a\": null, \"b\": [true, false, \"x\", {}]}, -1.5e+3, []] } ",
                r#"{"cat": [-9223372036854775809, 0], "num": [-0, 123456789012345678901234567890, 3.4e38], "word": [""]}"#,
            ]
        ));
        // Past float32's range the scanner gives up, and the value path refuses the number by name.
        let overflow = [r#"{"cat": [1, 2], "num": [0, 1, 3.5e38], "word": ["a"]}"#];
        assert!(!both(&census, &overflow));
        let value: Value = serde_json::from_str(overflow[0]).unwrap();
        let refused = census[1].tensor(&[&value], false).unwrap_err();
        assert!(refused.1.contains("float32"), "{refused:?}");
        let scalar = [Input::batched("x", Element::F64, &[])];
        assert!(both(&scalar, &["1.5", "-2", r#"{"x": 3}"#, "-0"]));
        let wide = [Input::batched("x", Element::I64, &[None])];
        assert!(both(
            &wide,
            &[
                "[9999999999999999999, 10000000000000000000, 18446744073709551616, 99999999999999999999]"
            ]
        ));
        let flags = [Input::batched("x", Element::Bool, &[Some(2)])];
        assert!(both(&flags, &["[true, false]", "[false, false]"]));
        let bytes = [Input::batched("x", Element::U8, &[None])];
        assert!(both(&bytes, &["[0, 255, 7]", "[1, 2, 3]"]));
    }

    #[test]
    fn gives_up_on_what_only_the_value_path_accepts_or_words() {
        let census = [
            Input::batched("cat", Element::I64, &[Some(2)]),
            Input::batched("word", Element::String, &[Some(1)]),
        ];
        let image = [Input::batched("x", Element::F32, &[Some(2), Some(2)])];
        let bytes = [Input::batched("x", Element::U8, &[None])];
        let numbers = [Input::batched("x", Element::I32, &[None])];
        for (inputs, batch) in [
            (&census[..], &[r#"{"cat": [1, 2]}"#][..]),
            (&census, &[r#"{"cat": [1, 2], "word": [7]}"#]),
            (
                &census,
                &[r#"{"cat": [1, 2], "cat": [3, 4], "word": ["a"]}"#],
            ),
            (&census, &[r#"[1, 2]"#]),
            (&census, &[r#"{"cat": ["1", 2], "word": ["a"]}"#]),
            (&census, &[r#"{"cat": [1, null], "word": ["a"]}"#]),
            (&census, &[r#"{"c\u0061t": [1, 2], "word": ["a"]}"#]),
            (&census, &[r#"{"cat": [1, 2], "word": ["\n"]}"#]),
            (&image, &["[[1, 2], [3]]"]),
            (&image, &["[[1, 2], 3, 4]"]),
            (&image, &["[1, 2, 3]"]),
            (&image, &["[[1, 2], [3, 4]]", "[[1, 2, 3]]"]),
            (&image, &["[[], []]"]),
            (&bytes, &[r#"{"b64": "AAEC"}"#]),
            (&bytes, &["[256]"]),
            (&bytes, &["[-1]"]),
            (&numbers, &["[1, 2.5]"]),
            (&numbers, &["[1, 2]", "[3]"]),
            (&numbers, &["[4294967296]"]),
        ] {
            assert!(!both(inputs, batch), "{batch:?}");
        }
        for text in [
            "[1e400]", "[1, 2", "[1 2]", "[01]", "[1.]", "[-]", "[tru]", "[1]]",
        ] {
            assert_eq!(read(&numbers, &[text]), None, "{text}");
        }
        // A raw tab inside a string is not JSON, though it is white space outside one.
        assert_eq!(
            read(&census, &["{\"cat\": [1, 2], \"word\": [\"a\t\"]}"]),
            None
        );
    }
}
