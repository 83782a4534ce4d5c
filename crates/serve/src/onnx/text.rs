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
            text: instance,
            at: 0,
        };
        scanner.instance(&mut columns, inputs).ok()?;
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

/// Why the fast path gave up; the value path says what, if anything, is wrong.
#[derive(Debug)]
struct GiveUp;

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
        match &self.data {
            Data::F32(values) => values.len(),
            Data::F64(values) => values.len(),
            Data::I32(values) => values.len(),
            Data::I64(values) => values.len(),
            Data::Bool(values) => values.len(),
            Data::String(values) => values.len(),
            Data::U8(values) => values.len(),
        }
    }

    /// Checks the instance just read against the input's shape, as the value path does, and
    /// makes ready for the next.
    fn end_instance(&mut self, input: &Input) -> Option<()> {
        if !self.given {
            return None;
        }
        let count = self.len() - self.start;
        let given: Vec<usize> = match self.leaf_depth {
            Some(depth) => self
                .dims
                .get(..depth)?
                .iter()
                .copied()
                .collect::<Option<_>>()?,
            None => return None,
        };
        let shape = input.fit(given, count, self.fixed.as_deref()).ok()?;
        self.fixed.get_or_insert(shape);
        self.dims.clear();
        self.leaf_depth = None;
        self.start = self.len();
        self.given = false;
        Some(())
    }

    /// A list of `length` elements ended at `depth`.
    fn list(&mut self, depth: usize, length: usize) -> Result<(), GiveUp> {
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            _ if length == 0 => Err(GiveUp),
            None => {
                self.dims[depth] = Some(length);
                Ok(())
            }
            Some(known) if known == length => Ok(()),
            Some(_) => Err(GiveUp),
        }
    }

    /// A scalar at `depth`: all of an instance's scalars must sit at the same depth.
    fn at_leaf(&mut self, depth: usize) -> Result<(), GiveUp> {
        match *self.leaf_depth.get_or_insert(depth) == depth {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    /// Appends a JSON integer, converted as the value path converts it.
    fn integer<T: Integer>(&mut self, depth: usize, value: T) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        let as_f64 = || value.to_f64();
        match &mut self.data {
            Data::F32(values) => values.push(as_f64() as f32),
            Data::F64(values) => values.push(as_f64()),
            Data::I32(values) => values.push(value.try_into().map_err(|_| GiveUp)?),
            // Beyond i64 the value path reads the number as a float and saturates.
            Data::I64(values) => values.push(value.try_into().unwrap_or(as_f64() as i64)),
            Data::U8(values) => values.push(value.try_into().map_err(|_| GiveUp)?),
            Data::Bool(_) | Data::String(_) => return Err(GiveUp),
        }
        Ok(())
    }

    /// Appends a JSON number with a fraction or an exponent.
    fn float(&mut self, depth: usize, value: f64) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        let integral = value.fract() == 0.0;
        match &mut self.data {
            Data::F32(values) => values.push(value as f32),
            Data::F64(values) => values.push(value),
            Data::I32(values) if integral => {
                values.push(i32::try_from(value as i64).map_err(|_| GiveUp)?);
            }
            Data::I64(values) if integral => values.push(value as i64),
            Data::U8(values) if integral => {
                values.push(u8::try_from(value as i64).map_err(|_| GiveUp)?);
            }
            _ => return Err(GiveUp),
        }
        Ok(())
    }

    fn boolean(&mut self, depth: usize, value: bool) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::Bool(values) => values.push(value),
            _ => return Err(GiveUp),
        }
        Ok(())
    }

    fn string(&mut self, depth: usize, value: &str) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::String(values) => values.push(value.to_owned()),
            _ => return Err(GiveUp),
        }
        Ok(())
    }
}

/// The integers JSON numbers parse to: `i64` when negative, `u64` when not.
trait Integer: Copy + TryInto<i64> + TryInto<i32> + TryInto<u8> {
    fn to_f64(self) -> f64;
}

impl Integer for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Integer for u64 {
    fn to_f64(self) -> f64 {
        self as f64
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
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    /// One instance: an object keyed by input name, or the value of a model's only input.
    fn instance(mut self, columns: &mut [Column], inputs: &[Input]) -> Result<(), GiveUp> {
        match (self.peek()?, &mut *columns) {
            (b'{', _) => self.object(columns, inputs)?,
            (_, [column]) => {
                column.given = true;
                self.value(column, 0)?;
            }
            _ => return Err(GiveUp),
        }
        self.skip_space();
        match self.at == self.text.len() {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    fn object(&mut self, columns: &mut [Column], inputs: &[Input]) -> Result<(), GiveUp> {
        self.at += 1;
        if self.eat(b'}')? {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            match inputs.iter().position(|input| input.name == key) {
                Some(index) if !columns[index].given => {
                    columns[index].given = true;
                    self.value(&mut columns[index], 0)?;
                }
                Some(_) => return Err(GiveUp),
                None => self.skip(0)?,
            }
            if !self.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// An input's value, or an element of a list in it at `depth`, appended to its column.
    fn value(&mut self, column: &mut Column, depth: usize) -> Result<(), GiveUp> {
        match self.peek()? {
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut length = 0;
                if !self.eat(b']')? {
                    loop {
                        // Numbers are most of what is read: they skip the dispatch below.
                        match self.peek()? {
                            b'-' | b'0'..=b'9' => self.number_into(column, depth + 1)?,
                            _ => self.value(column, depth + 1)?,
                        }
                        length += 1;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
                column.list(depth, length)
            }
            b'"' => {
                let text = self.string()?;
                column.string(depth, text)
            }
            b't' => {
                self.literal("true")?;
                column.boolean(depth, true)
            }
            b'f' => {
                self.literal("false")?;
                column.boolean(depth, false)
            }
            b'-' | b'0'..=b'9' => self.number_into(column, depth),
            _ => Err(GiveUp),
        }
    }

    fn number_into(&mut self, column: &mut Column, depth: usize) -> Result<(), GiveUp> {
        match self.number()? {
            Number::Unsigned(value) => column.integer(depth, value),
            Number::Signed(value) => column.integer(depth, value),
            Number::Float(value) => column.float(depth, value),
        }
    }

    /// Steps over a value of a key no input has.
    fn skip(&mut self, depth: usize) -> Result<(), GiveUp> {
        match self.peek()? {
            open @ (b'[' | b'{') if depth < MAX_DEPTH => {
                self.at += 1;
                let close = open + 2;
                if self.eat(close)? {
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip(depth + 1)?;
                    if !self.more(close)? {
                        return Ok(());
                    }
                }
            }
            b'"' => self.string().map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => Err(GiveUp),
        }
    }

    /// A string without escapes (with them, the value path reads it).
    fn string(&mut self) -> Result<&'a str, GiveUp> {
        self.expect(b'"')?;
        let start = self.at;
        let length = self.text.as_bytes()[start..]
            .iter()
            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
            .ok_or(GiveUp)?;
        self.at = start + length;
        self.expect(b'"')?;
        self.text.get(start..start + length).ok_or(GiveUp)
    }

    fn number(&mut self) -> Result<Number, GiveUp> {
        let start = self.at;
        let negative = self.byte() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let digits = self.at;
        let mut magnitude = 0u64;
        match self.byte() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                while let Some(digit @ b'0'..=b'9') = self.byte() {
                    magnitude = magnitude
                        .wrapping_mul(10)
                        .wrapping_add(u64::from(digit - b'0'));
                    self.at += 1;
                }
            }
            _ => return Err(GiveUp),
        }
        // Nineteen digits always fit a u64; twenty may, which only an exact parse tells.
        let magnitude = match self.at - digits {
            ..=19 => Some(magnitude),
            _ => self
                .text
                .get(digits..self.at)
                .and_then(|text| text.parse().ok()),
        };
        let mut float = false;
        if self.byte() == Some(b'.') {
            self.at += 1;
            self.digits()?;
            float = true;
        }
        if let Some(b'e' | b'E') = self.byte() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.byte() {
                self.at += 1;
            }
            self.digits()?;
            float = true;
        }
        let negated = magnitude.and_then(|value| 0i64.checked_sub_unsigned(value));
        match (float, negative, magnitude, negated) {
            (false, false, Some(value), _) => Ok(Number::Unsigned(value)),
            (false, true, _, Some(value)) if value < 0 => Ok(Number::Signed(value)),
            _ => self
                .text
                .get(start..self.at)
                .and_then(|text| text.parse().ok())
                // serde_json refuses a number out of f64's range rather than read it as infinite.
                .filter(|value: &f64| value.is_finite())
                .map(Number::Float)
                .ok_or(GiveUp),
        }
    }

    /// One or more digits.
    fn digits(&mut self) -> Result<(), GiveUp> {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.byte() {
            self.at += 1;
        }
        match self.at > start {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), GiveUp> {
        match self
            .text
            .as_bytes()
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(word.as_bytes()))
        {
            true => {
                self.at += word.len();
                Ok(())
            }
            false => Err(GiveUp),
        }
    }

    /// After an element: `true` at a comma (another follows), `false` at `close`.
    fn more(&mut self, close: u8) -> Result<bool, GiveUp> {
        match self.next()? {
            b',' => Ok(true),
            byte if byte == close => Ok(false),
            _ => Err(GiveUp),
        }
    }

    /// Whether the next byte (after white space) is `byte`, stepping over it if so.
    fn eat(&mut self, byte: u8) -> Result<bool, GiveUp> {
        let found = self.peek()? == byte;
        if found {
            self.at += 1;
        }
        Ok(found)
    }

    fn expect(&mut self, byte: u8) -> Result<(), GiveUp> {
        match self.next()? == byte {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    /// The next byte after white space, stepped over.
    fn next(&mut self) -> Result<u8, GiveUp> {
        let byte = self.peek()?;
        self.at += 1;
        Ok(byte)
    }

    /// The next byte after white space.
    fn peek(&mut self) -> Result<u8, GiveUp> {
        self.skip_space();
        self.byte().ok_or(GiveUp)
    }

    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.byte() {
            self.at += 1;
        }
    }
}

/// A JSON number as serde_json parses it.
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn input(name: &str, element: Element, row_shape: &[Option<usize>]) -> Input {
        Input {
            name: name.into(),
            element,
            batch: Batch::Dynamic,
            row_shape: row_shape.to_vec(),
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
            input("cat", Element::I64, &[Some(2)]),
            input("num", Element::F32, &[Some(3)]),
            input("word", Element::String, &[Some(1)]),
        ];
        assert!(both(
            &census,
            &[
                r#"{"cat": [1, 2], "num": [0.5, -1, 1e3], "word": ["a"]}"#,
                r#"{"word": ["b"], "num": [0.6638542413711548, 2, 3], "cat": [3.0, 18446744073709551615], "id": {"x": 1}}"#,
            ]
        ));
        let image = [input("x", Element::F32, &[Some(1), Some(2), Some(2)])];
        assert!(both(
            &image,
            &[
                "[[[1, 2], [3, 4]]]",
                "[5, 6, 7, 8]",
                r#"{"x": [[[9, 0], [1, 2]]]}"#
            ]
        ));
        let ragged = [input("x", Element::I32, &[None, Some(2)])];
        assert!(both(
            &ragged,
            &["[[1, 2], [3, 4], [5, 6]]", "[[7, 8], [9, 1e1], [-3, 0]]"]
        ));
        assert!(both(
            &census,
            &[
                " { \"cat\" :\t[ -0 ,\n-9223372036854775808 ] , \"num\":[1E2,-1.5e-3,0.1], \"word\":[\"é\"], \
                 \"key\": [{\"a\": null, \"b\": [true, false, \"x\", {}]}, -1.5e+3, []] } ",
                r#"{"cat": [-9223372036854775809, 0], "num": [-0, 123456789012345678901234567890, 3.4e39], "word": [""]}"#,
            ]
        ));
        let scalar = [input("x", Element::F64, &[])];
        assert!(both(&scalar, &["1.5", "-2", r#"{"x": 3}"#, "-0"]));
        let wide = [input("x", Element::I64, &[None])];
        assert!(both(
            &wide,
            &[
                "[9999999999999999999, 10000000000000000000, 18446744073709551616, 99999999999999999999]"
            ]
        ));
        let flags = [input("x", Element::Bool, &[Some(2)])];
        assert!(both(&flags, &["[true, false]", "[false, false]"]));
        let bytes = [input("x", Element::U8, &[None])];
        assert!(both(&bytes, &["[0, 255, 7]", "[1, 2, 3]"]));
    }

    #[test]
    fn gives_up_on_what_only_the_value_path_accepts_or_words() {
        let census = [
            input("cat", Element::I64, &[Some(2)]),
            input("word", Element::String, &[Some(1)]),
        ];
        let image = [input("x", Element::F32, &[Some(2), Some(2)])];
        let bytes = [input("x", Element::U8, &[None])];
        let numbers = [input("x", Element::I32, &[None])];
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
    }
}
