//! The `filter` of list methods, in Google's filter grammar (AIP-160), as gcloud and ML Engine
//! read it: `jobId:census* AND state:FAILED`, `labels.env=prod`, `NOT (state=READY OR state=FAILED)`.
//!
//! - A term is `path OP value`: OP one of `:` (has; a trailing `*` makes it a prefix match), `=`,
//!   `!=`, `<`, `<=`, `>`, `>=`; spaces may surround it. The value is a word (up to a space or a
//!   parenthesis) or a quoted string (`\"` and `\\` escape). Paths are dotted lowerCamelCase field
//!   names. A resource name matches on its full name or its last segment, so `name:census*`
//!   works as users expect.
//! - `NOT` or `-` negates a term or a parenthesized expression.
//! - `OR` binds tighter than `AND`: `a AND b OR c` is `a AND (b OR c)`. Terms side by side are
//!   joined by `AND`. Parentheses group.
//!
//! A malformed filter is refused with the position (in characters from 0) where reading stopped.

use serde_json::Value;

use kiln_store::Contains;

use crate::RegistryError;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Term(Term),
    Not(Box<Node>),
    /// Every one holds.
    And(Vec<Node>),
    /// Some one holds.
    Or(Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    path: Vec<String>,
    operator: Operator,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    Has,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// The operators, longest first where one starts another.
const OPERATORS: [(&str, Operator); 7] = [
    ("!=", Operator::NotEqual),
    ("<=", Operator::LessOrEqual),
    (">=", Operator::GreaterOrEqual),
    ("=", Operator::Equal),
    ("<", Operator::Less),
    (">", Operator::Greater),
    (":", Operator::Has),
];

impl Filter {
    /// Parses a filter expression; an error names the position and what was expected there.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            at: 0,
            depth: 0,
        };
        let root = parser.conjunction()?;
        parser.skip_spaces();
        if parser.at < parser.chars.len() {
            return Err(parser.error("an operator (AND, OR) or the end of the filter"));
        }
        Ok(Self { root })
    }

    /// Whether a resource (as JSON) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        self.root.matches(resource)
    }

    /// Whether a resource matches, as the API represents it.
    pub fn keeps<T: serde::Serialize>(&self, item: &T) -> bool {
        serde_json::to_value(item).is_ok_and(|value| self.matches(&value))
    }

    /// What the stored JSON text of every resource this filter keeps contains, for the store to
    /// narrow its scan with. `computed` names the fields a resource gets only when it is read
    /// (not stored), about which the stored text says nothing.
    pub fn contains(&self, computed: &[&str]) -> Contains {
        let all_of = match &self.root {
            Node::And(nodes) => nodes
                .iter()
                .filter_map(|node| node.needs(computed))
                .collect(),
            node => node.needs(computed).into_iter().collect(),
        };
        Contains { all_of }
    }
}

impl Node {
    fn matches(&self, resource: &Value) -> bool {
        match self {
            Node::Term(term) => term.matches(resource),
            Node::Not(node) => !node.matches(resource),
            Node::And(nodes) => nodes.iter().all(|node| node.matches(resource)),
            Node::Or(nodes) => nodes.iter().any(|node| node.matches(resource)),
        }
    }

    /// Alternatives, one of which the stored text of every resource this node keeps shows all
    /// the strings of; `None` where nothing need show (a negation, a term on a computed or
    /// non-text field). Of a conjunction, its first part that says something is enough.
    fn needs(&self, computed: &[&str]) -> Option<Vec<Vec<String>>> {
        match self {
            Node::Term(term) => term.contains(computed).map(|strings| vec![strings]),
            Node::Not(_) => None,
            Node::And(nodes) => nodes.iter().find_map(|node| node.needs(computed)),
            Node::Or(nodes) => nodes
                .iter()
                .map(|node| node.needs(computed))
                .collect::<Option<Vec<_>>>()
                .map(|alternatives| alternatives.concat()),
        }
    }
}

/// How deep negations and parentheses may nest: the reader recurses on them.
const MAX_DEPTH: usize = 64;

/// A recursive-descent reader of the grammar, over characters so that positions count them.
struct Parser {
    chars: Vec<char>,
    at: usize,
    /// Negations and parentheses open here.
    depth: usize,
}

impl Parser {
    /// Disjunctions joined by `AND` or side by side, up to a `)` or the end.
    fn conjunction(&mut self) -> Result<Node, RegistryError> {
        let mut all = vec![self.disjunction()?];
        loop {
            self.skip_spaces();
            if self.at == self.chars.len() || self.peek() == Some(')') {
                break;
            }
            self.keyword("AND");
            all.push(self.disjunction()?);
        }
        Ok(match all.len() {
            1 => all.remove(0),
            _ => Node::And(all),
        })
    }

    /// Negations joined by `OR`.
    fn disjunction(&mut self) -> Result<Node, RegistryError> {
        let mut any = vec![self.negation()?];
        loop {
            self.skip_spaces();
            if !self.keyword("OR") {
                break;
            }
            any.push(self.negation()?);
        }
        Ok(match any.len() {
            1 => any.remove(0),
            _ => Node::Or(any),
        })
    }

    /// `NOT` or `-` before a negation, a parenthesized conjunction, or a term.
    fn negation(&mut self) -> Result<Node, RegistryError> {
        self.skip_spaces();
        if self.depth == MAX_DEPTH {
            return Err(RegistryError::InvalidArgument(format!(
                "filter: negations and parentheses nest deeper than {MAX_DEPTH} at position {}",
                self.at
            )));
        }
        self.depth += 1;
        let node = self.nested();
        self.depth -= 1;
        node
    }

    /// What [`Parser::negation`] reads, one level deeper.
    fn nested(&mut self) -> Result<Node, RegistryError> {
        if self.keyword("NOT") {
            return Ok(Node::Not(Box::new(self.negation()?)));
        }
        match self.peek() {
            Some('-') => {
                self.at += 1;
                Ok(Node::Not(Box::new(self.negation()?)))
            }
            Some('(') => {
                self.at += 1;
                self.skip_spaces();
                if self.peek() == Some(')') {
                    return Err(self.error("an expression inside the parentheses"));
                }
                let inner = self.conjunction()?;
                self.skip_spaces();
                match self.peek() {
                    Some(')') => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error("')'")),
                }
            }
            _ => self.term().map(Node::Term),
        }
    }

    /// `path OP value`.
    fn term(&mut self) -> Result<Term, RegistryError> {
        let start = self.at;
        let path = self.take_while(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        if path.is_empty() {
            return Err(self.error("a term (field:value)"));
        }
        self.skip_spaces();
        let operator = OPERATORS.iter().find(|(symbol, _)| {
            symbol
                .chars()
                .enumerate()
                .all(|(offset, c)| self.chars.get(self.at + offset) == Some(&c))
        });
        let Some((symbol, operator)) = operator else {
            return Err(self.bad_term(start));
        };
        self.at += symbol.chars().count();
        self.skip_spaces();
        let value = match self.peek() {
            Some('"') => self.quoted()?,
            _ => self.take_while(|c| !c.is_whitespace() && c != '(' && c != ')'),
        };
        Ok(Term {
            path: path.split('.').map(str::to_string).collect(),
            operator: *operator,
            value,
        })
    }

    /// A quoted string, the quotes dropped and escapes read.
    fn quoted(&mut self) -> Result<String, RegistryError> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                '"' => return Ok(value),
                '\\' => {
                    if let Some(escaped) = self.peek() {
                        value.push(escaped);
                        self.at += 1;
                    }
                }
                c => value.push(c),
            }
        }
        Err(RegistryError::InvalidArgument(format!(
            "filter: the quoted value at position {start} has no closing quote"
        )))
    }

    /// The refusal of a term that starts at `start`: its text up to the next operator or
    /// parenthesis, and what a term is.
    fn bad_term(&self, start: usize) -> RegistryError {
        let rest: String = self.chars[start..].iter().collect();
        let text = rest
            .split([')', '('])
            .next()
            .unwrap_or_default()
            .split(" AND ")
            .next()
            .unwrap_or_default()
            .split(" OR ")
            .next()
            .unwrap_or_default()
            .trim();
        RegistryError::InvalidArgument(format!(
            "filter term {text:?} at position {start} is not of the form field:value"
        ))
    }

    fn error(&self, expected: &str) -> RegistryError {
        let found = match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "the end".into(),
        };
        RegistryError::InvalidArgument(format!(
            "filter: expected {expected} at position {}, found {found}",
            self.at
        ))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// Reads `word` when it stands alone here: followed by a space, a parenthesis or the end.
    fn keyword(&mut self, word: &str) -> bool {
        let length = word.chars().count();
        let matches = word
            .chars()
            .enumerate()
            .all(|(offset, c)| self.chars.get(self.at + offset) == Some(&c));
        let alone = match self.chars.get(self.at + length) {
            None => true,
            Some(&next) => next.is_whitespace() || next == '(',
        };
        if matches && alone {
            self.at += length;
        }
        matches && alone
    }
}

impl Term {
    fn matches(&self, resource: &Value) -> bool {
        let mut current = resource;
        for part in &self.path {
            match current.get(part) {
                Some(next) => current = next,
                None => return self.operator == Operator::NotEqual,
            }
        }
        let candidates: Vec<String> = match current {
            Value::String(text) => {
                let mut candidates = vec![text.clone()];
                if let Some(last) = text.rsplit('/').next().filter(|last| *last != text) {
                    candidates.push(last.to_string());
                }
                candidates
            }
            Value::Array(values) => values.iter().map(scalar).collect(),
            other => vec![scalar(other)],
        };
        candidates.iter().any(|candidate| self.compare(candidate))
    }

    /// Strings the stored text of every resource this term keeps contains: the field's name as a
    /// JSON key and the text value (a string value matches whole, as its last path segment, or as
    /// an element, so the value occurs verbatim when JSON escapes none of its characters). `None`
    /// where the text need not show the term: comparisons, numbers and other non-text values,
    /// computed fields.
    fn contains(&self, computed: &[&str]) -> Option<Vec<String>> {
        let value = match self.operator {
            Operator::Has => self.value.strip_suffix('*').unwrap_or(&self.value),
            Operator::Equal => &self.value,
            _ => return None,
        };
        let field = self.path.last()?;
        let verbatim = !value.is_empty()
            && value.parse::<f64>().is_err()
            && !matches!(value, "true" | "false" | "null")
            && !value
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control());
        let stored = !self
            .path
            .iter()
            .any(|part| computed.contains(&part.as_str()));
        (verbatim && stored).then(|| vec![format!("\"{field}\":"), value.to_string()])
    }

    fn compare(&self, candidate: &str) -> bool {
        let ordering = match (candidate.parse::<f64>(), self.value.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => Some(candidate.cmp(self.value.as_str())),
        };
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self.operator {
            Operator::Has => match self.value.strip_suffix('*') {
                Some(prefix) => candidate.starts_with(prefix),
                None => candidate == self.value,
            },
            Operator::Equal => candidate == self.value,
            Operator::NotEqual => candidate != self.value,
            Operator::Less => ordering == Some(Less),
            Operator::LessOrEqual => matches!(ordering, Some(Less | Equal)),
            Operator::Greater => ordering == Some(Greater),
            Operator::GreaterOrEqual => matches!(ordering, Some(Greater | Equal)),
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(filter: &str, resource: &Value, expected: bool) {
        assert_eq!(
            Filter::parse(filter).unwrap().matches(resource),
            expected,
            "{filter} on {resource}"
        );
    }

    #[test]
    fn filters() {
        let job = json!({"jobId": "census_42", "state": "FAILED", "labels": {"env": "prod"}, "name": "projects/p/models/census"});
        let job = &job;
        check("jobId:census*", job, true);
        check("jobId:census* AND state:FAILED", job, true);
        check("jobId:census* AND state:SUCCEEDED", job, false);
        check("state:SUCCEEDED OR labels.env=prod", job, true);
        // AIP-160: OR binds tighter than AND.
        check(
            "state:SUCCEEDED AND labels.env=dev OR jobId:census*",
            job,
            false,
        );
        check(
            "labels.env=prod OR state:SUCCEEDED AND jobId:other",
            job,
            false,
        );
        check("jobId:other OR state:FAILED AND labels.env=prod", job, true);
        check("NOT state=FAILED", job, false);
        check("-labels.env=dev", job, true);
        check("name:census", job, true);
        check("name=\"projects/p/models/census\"", job, true);
        check("labels.team:x", job, false);
        check("labels.team!=x", job, true);
        check("NOT labels.team!=x", job, false);
        check("count>=3", &json!({"count": "12"}), true);
    }

    #[test]
    fn parentheses_group_and_terms_side_by_side_are_joined_by_and() {
        let job = json!({"jobId": "census_42", "state": "FAILED", "labels": {"env": "prod"}});
        let job = &job;
        check(
            "(state:SUCCEEDED AND labels.env=dev) OR jobId:census*",
            job,
            true,
        );
        check(
            "state:FAILED AND (labels.env=dev OR jobId:other)",
            job,
            false,
        );
        check("NOT (state=READY OR state=SUCCEEDED)", job, true);
        check("-(state=FAILED)", job, false);
        check("((jobId:census*))", job, true);
        check("state:FAILED labels.env=prod", job, true);
        check("state:FAILED labels.env=dev", job, false);
        check("state = FAILED AND labels.env = prod", job, true);
        check(r#"jobId="census_42""#, job, true);
        check(
            r#"labels.env="a \"b\"""#,
            &json!({"labels": {"env": "a \"b\""}}),
            true,
        );
        check("ANDROID:x OR NOTE:y", &json!({"ANDROID": "x"}), true);
    }

    #[test]
    fn malformed_filters_are_refused_at_their_position() {
        let refusal = |filter: &str| Filter::parse(filter).unwrap_err().to_string();
        let error = refusal("state FAILED");
        assert!(error.contains("\"state FAILED\" at position 0"), "{error}");
        let error = refusal("jobId:x AND (state:FAILED OR");
        assert!(
            error.contains("expected a term (field:value) at position 28, found the end"),
            "{error}"
        );
        let error = refusal("(jobId:x");
        assert!(
            error.contains("expected ')' at position 8, found the end"),
            "{error}"
        );
        let error = refusal("jobId:x)");
        assert!(error.contains("at position 7, found ')'"), "{error}");
        let error = refusal("()");
        assert!(
            error.contains("inside the parentheses at position 1"),
            "{error}"
        );
        let error = refusal(&"(".repeat(100_000));
        assert!(
            error.contains("nest deeper than 64 at position 64"),
            "{error}"
        );
        let error = refusal("name=\"open");
        assert!(
            error.contains("quoted value at position 5 has no closing quote"),
            "{error}"
        );
    }

    #[test]
    fn the_store_is_told_what_every_kept_resource_shows() {
        let contains = |filter: &str| {
            Filter::parse(filter)
                .unwrap()
                .contains(&["computed"])
                .all_of
        };
        let strings = |field: &str, value: &str| vec![format!("\"{field}\":"), value.to_string()];
        assert_eq!(
            contains("jobId:census* AND (state=FAILED OR state=CANCELLED)"),
            [
                vec![strings("jobId", "census")],
                vec![strings("state", "FAILED"), strings("state", "CANCELLED")]
            ]
        );
        assert_eq!(
            contains("NOT state=FAILED AND computed=x AND count>3 AND (a=b OR NOT c=d)"),
            Vec::<Vec<Vec<String>>>::new()
        );
        assert_eq!(
            contains("(state=FAILED AND jobId:x) OR state=READY"),
            [vec![strings("state", "FAILED"), strings("state", "READY")]]
        );
    }
}
