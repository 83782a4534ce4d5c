//! List parameters: `filter`, `orderBy`, `pageSize`, `pageToken`.
//!
//! The filter language is the subset ML Engine's list methods document, e.g.
//! `jobId:census* AND state:FAILED`, `labels.env=prod`, `NOT state=READY`:
//! terms `path OP value` with OP one of `:` (has; a trailing `*` makes it a prefix match),
//! `=`, `!=`, `<`, `<=`, `>`, `>=`, joined by `AND` and `OR`, each optionally negated by `NOT` or
//! `-`. As in Google's filter grammar (AIP-160), `OR` binds tighter than `AND`: `a AND b OR c` is
//! `a AND (b OR c)`, so a gcloud filter lists what it lists on ML Engine. Paths are dotted lowerCamelCase field names. A resource name matches on
//! its full name or its last segment, so `name:census*` works as users expect.
//!
//! `orderBy` (as Vertex AI's list methods take it; ML Engine's lists have a fixed order) is a comma
//! list of field paths, each optionally followed by `desc` or `asc`: `createTime desc`. Values
//! compare as [`kiln_store::order`] says, ties keep the list's own order, and page tokens name the
//! last item shown, so paging follows any order. Lists the store holds are filtered, sorted and
//! paged by the database ([`ListParams::scan`]); the few small ones made in memory use
//! [`ListParams::page`].

use base64::Engine;
use serde_json::Value;

use kiln_store::{Contains, Order, Scan, SortKey};

use crate::RegistryError;

/// Default page size (the API's).
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Largest page size (the API's).
pub const MAX_PAGE_SIZE: usize = 100;
/// The most items one scan of the store returns while a page fills.
const SCAN_BATCH_MAX: usize = 1000;

/// Parameters of a list call, as received.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `filter`.
    pub filter: Option<String>,
    /// `pageSize`; 0 or absent means the default.
    pub page_size: Option<i64>,
    /// `pageToken` from a previous response.
    pub page_token: Option<String>,
    /// `orderBy`: `field [desc|asc], ...`; absent keeps the list's own order.
    pub order_by: Option<String>,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Token of the next page.
    pub next_page_token: Option<String>,
}

impl ListParams {
    /// Filters `items` (given in list order), then returns the page the parameters ask for.
    pub fn page<T: serde::Serialize>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, RegistryError> {
        let filter = self.filter()?;
        let page_size = self.size()?;
        let mut items: Vec<T> = match &filter {
            Some(filter) => items
                .into_iter()
                .filter(|item| filter.keeps(item))
                .collect(),
            None => items,
        };
        let order = self.order()?;
        if !order.is_empty() {
            let mut keyed: Vec<(Value, T)> = items
                .into_iter()
                .map(|item| (serde_json::to_value(&item).unwrap_or(Value::Null), item))
                .collect();
            keyed.sort_by(|(a, _), (b, _)| order.compare(a, b));
            items = keyed.into_iter().map(|(_, item)| item).collect();
        }
        if let Some(after) = self.after()? {
            let position = items
                .iter()
                .position(|item| key(item) == after)
                .ok_or_else(|| self.invalid_token())?;
            items.drain(..=position);
        }
        Ok(Page::of(items, page_size, key))
    }

    /// The page the parameters ask for, read by scanning rather than loading the whole list.
    /// `scan` returns a page of the list as the store holds it, narrowed by what the filter
    /// requires of the stored text and sorted by the `orderBy` (`computed` names the fields
    /// items get only when read, which the store cannot narrow or sort by); `exists(key)` tells
    /// whether a page token's item is still there. The exact filter is applied to what comes
    /// back until the page is full.
    pub fn scan<T: serde::Serialize>(
        &self,
        computed: &[&str],
        mut scan: impl FnMut(&Scan<'_>) -> Result<Vec<T>, RegistryError>,
        key: impl Fn(&T) -> String,
        exists: impl Fn(&str) -> Result<bool, RegistryError>,
    ) -> Result<Page<T>, RegistryError> {
        let filter = self.filter()?;
        let contains = filter
            .as_ref()
            .map(|filter| filter.contains(computed))
            .unwrap_or_default();
        let order = self.order()?;
        if order
            .keys()
            .iter()
            .any(|sort| computed.contains(&sort.path()[0].as_str()))
        {
            let everything = scan(&Scan {
                after: None,
                contains: &contains,
                order: &Order::OWN,
                limit: usize::MAX,
            })?;
            return self.page(everything, key);
        }
        let size = self.size()?;
        let mut after = self.after()?;
        if let Some(after) = &after
            && !exists(after)?
        {
            return Err(self.invalid_token());
        }
        let mut found = Vec::new();
        // A sorted scan sorts every narrowed row again for each batch, so it asks for the
        // largest batch at once; an unsorted one reads in order and stops early.
        let mut batch = match order.is_empty() {
            true => size + 1,
            false => SCAN_BATCH_MAX,
        };
        while found.len() <= size {
            let scanned = scan(&Scan {
                after: after.as_deref(),
                contains: &contains,
                order: &order,
                limit: batch,
            })?;
            let exhausted = scanned.len() < batch;
            for item in scanned {
                after = Some(key(&item));
                if filter.as_ref().is_none_or(|filter| filter.keeps(&item)) {
                    found.push(item);
                }
            }
            if exhausted {
                break;
            }
            batch = (batch * 2).min(SCAN_BATCH_MAX);
        }
        Ok(Page::of(found, size, key))
    }

    /// The filter, if one was given.
    pub fn filter(&self) -> Result<Option<Filter>, RegistryError> {
        match self
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            Some(text) => Ok(Some(Filter::parse(text)?)),
            None => Ok(None),
        }
    }

    /// The number of items a page holds.
    pub fn size(&self) -> Result<usize, RegistryError> {
        match self.page_size {
            None | Some(0) => Ok(DEFAULT_PAGE_SIZE),
            Some(size) if size < 0 => Err(RegistryError::InvalidArgument(format!(
                "pageSize must not be negative, got {size}"
            ))),
            Some(size) => Ok((size as usize).min(MAX_PAGE_SIZE)),
        }
    }

    /// The `orderBy`: empty when none was given, which keeps the list's own order.
    pub fn order(&self) -> Result<Order, RegistryError> {
        let Some(text) = self
            .order_by
            .as_deref()
            .filter(|text| !text.trim().is_empty())
        else {
            return Ok(Order::OWN);
        };
        let keys = text
            .split(',')
            .map(|clause| {
                let words: Vec<&str> = clause.split_whitespace().collect();
                let (path, descending) = match words.as_slice() {
                    [path] => (*path, false),
                    [path, direction] if direction.eq_ignore_ascii_case("asc") => (*path, false),
                    [path, direction] if direction.eq_ignore_ascii_case("desc") => (*path, true),
                    _ => return Err(invalid_order(clause)),
                };
                SortKey::new(path, descending).ok_or_else(|| invalid_order(clause))
            })
            .collect::<Result<_, _>>()?;
        Ok(Order::new(keys))
    }

    /// The key of the last item the previous page showed, if a page token was given.
    pub fn after(&self) -> Result<Option<String>, RegistryError> {
        match self.page_token.as_deref().filter(|token| !token.is_empty()) {
            Some(token) => Ok(Some(decode_token(token)?)),
            None => Ok(None),
        }
    }

    /// The error for a page token that names no item of the list.
    pub fn invalid_token(&self) -> RegistryError {
        RegistryError::InvalidArgument(format!(
            "pageToken {:?} is not valid for this list",
            self.page_token.as_deref().unwrap_or_default()
        ))
    }
}

impl<T> Page<T> {
    /// The page of `items` (those after the previous page, in order; more than `size` when the
    /// list goes on), with the token of the next page when there is one.
    pub fn of(mut items: Vec<T>, size: usize, key: impl Fn(&T) -> String) -> Self {
        let next_page_token = (items.len() > size).then(|| encode_token(&key(&items[size - 1])));
        items.truncate(size);
        Page {
            items,
            next_page_token,
        }
    }
}

fn invalid_order(clause: &str) -> RegistryError {
    RegistryError::InvalidArgument(format!(
        "orderBy {clause:?} is not valid: give a field name (dotted for a nested field), optionally followed by desc or asc"
    ))
}

fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> Result<String, RegistryError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| RegistryError::InvalidArgument(format!("pageToken {token:?} is not valid")))
}

/// A parsed filter: a conjunction of disjunctions of terms (`OR` binds tighter than `AND`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    all_of: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    negated: bool,
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

impl Filter {
    /// Parses a filter expression; errors name the offending term.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let all_of = split_words(text, "AND")
            .into_iter()
            .map(|group| {
                split_words(&group, "OR")
                    .iter()
                    .map(|term| Term::parse(term))
                    .collect()
            })
            .collect::<Result<Vec<Vec<Term>>, _>>()?;
        Ok(Self { all_of })
    }

    /// Whether a resource (as JSON) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        self.all_of
            .iter()
            .all(|any_of| any_of.iter().any(|term| term.matches(resource)))
    }

    /// Whether a resource matches, as the API represents it.
    pub fn keeps<T: serde::Serialize>(&self, item: &T) -> bool {
        serde_json::to_value(item).is_ok_and(|value| self.matches(&value))
    }

    /// What the stored JSON text of every resource this filter keeps contains, for the store to
    /// narrow its scan with. `computed` names the fields a resource gets only when it is read
    /// (not stored), about which the stored text says nothing.
    pub fn contains(&self, computed: &[&str]) -> Contains {
        Contains {
            all_of: self
                .all_of
                .iter()
                .filter_map(|any_of| {
                    any_of
                        .iter()
                        .map(|term| term.contains(computed))
                        .collect::<Option<Vec<_>>>()
                })
                .collect(),
        }
    }
}

/// Splits on a keyword that stands alone between spaces, outside quotes.
fn split_words(text: &str, keyword: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_quotes = false;
    let words: Vec<&str> = text.split(' ').collect();
    for word in words {
        in_quotes ^= word.matches('"').count() % 2 == 1;
        if !in_quotes && word == keyword {
            parts.push(String::new());
        } else {
            let current = parts
                .last_mut()
                .expect("parts starts non-empty. This is a bug.");
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    parts
        .into_iter()
        .map(|part| part.trim().to_string())
        .collect()
}

impl Term {
    fn parse(text: &str) -> Result<Self, RegistryError> {
        let invalid = || {
            RegistryError::InvalidArgument(format!(
                "filter term {text:?} is not of the form field:value"
            ))
        };
        let mut rest = text.trim();
        let mut negated = false;
        if let Some(stripped) = rest.strip_prefix("NOT ") {
            negated = true;
            rest = stripped.trim_start();
        } else if let Some(stripped) = rest.strip_prefix('-') {
            negated = true;
            rest = stripped;
        }
        let operators = [
            ("!=", Operator::NotEqual),
            ("<=", Operator::LessOrEqual),
            (">=", Operator::GreaterOrEqual),
            ("=", Operator::Equal),
            ("<", Operator::Less),
            (">", Operator::Greater),
            (":", Operator::Has),
        ];
        let (position, symbol, operator) = operators
            .iter()
            .filter_map(|(symbol, operator)| {
                rest.find(symbol)
                    .map(|position| (position, *symbol, *operator))
            })
            .min_by_key(|(position, symbol, _)| (*position, std::cmp::Reverse(symbol.len())))
            .ok_or_else(invalid)?;
        let field = rest[..position].trim();
        let value = rest[position + symbol.len()..]
            .trim()
            .trim_matches('"')
            .to_string();
        if field.is_empty()
            || !field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            return Err(invalid());
        }
        Ok(Term {
            negated,
            path: field.split('.').map(str::to_string).collect(),
            operator,
            value,
        })
    }

    fn matches(&self, resource: &Value) -> bool {
        let mut current = resource;
        for part in &self.path {
            match current.get(part) {
                Some(next) => current = next,
                None => return self.negated ^ (self.operator == Operator::NotEqual),
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
        let matched = candidates.iter().any(|candidate| self.compare(candidate));
        matched ^ self.negated
    }

    /// Strings the stored text of every resource this term keeps contains: the field's name as a
    /// JSON key and the text value (a string value matches whole, as its last path segment, or as
    /// an element, so the value occurs verbatim when JSON escapes none of its characters). `None`
    /// where the text need not show the term: negations, comparisons, numbers and other non-text
    /// values, computed fields.
    fn contains(&self, computed: &[&str]) -> Option<Vec<String>> {
        let value = match self.operator {
            _ if self.negated => return None,
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

    fn check(filter: &str, resource: Value, expected: bool) {
        assert_eq!(
            Filter::parse(filter).unwrap().matches(&resource),
            expected,
            "{filter} on {resource}"
        );
    }

    #[test]
    fn filters() {
        let job = json!({"jobId": "census_42", "state": "FAILED", "labels": {"env": "prod"}, "name": "projects/p/models/census"});
        check("jobId:census*", job.clone(), true);
        check("jobId:census* AND state:FAILED", job.clone(), true);
        check("jobId:census* AND state:SUCCEEDED", job.clone(), false);
        check("state:SUCCEEDED OR labels.env=prod", job.clone(), true);
        // AIP-160: OR binds tighter than AND.
        check(
            "state:SUCCEEDED AND labels.env=dev OR jobId:census*",
            job.clone(),
            false,
        );
        check(
            "labels.env=prod OR state:SUCCEEDED AND jobId:other",
            job.clone(),
            false,
        );
        check(
            "jobId:other OR state:FAILED AND labels.env=prod",
            job.clone(),
            true,
        );
        check("NOT state=FAILED", job.clone(), false);
        check("-labels.env=dev", job.clone(), true);
        check("name:census", job.clone(), true);
        check("name=\"projects/p/models/census\"", job.clone(), true);
        check("labels.team:x", job, false);
        check("count>=3", json!({"count": "12"}), true);
    }

    #[test]
    fn malformed_terms_are_named() {
        let error = Filter::parse("state FAILED").unwrap_err().to_string();
        assert!(error.contains("\"state FAILED\""), "{error}");
    }

    #[test]
    fn order_by_sorts_on_fields_and_pages_follow_it() {
        let jobs: Vec<Value> = [("a", "2026-01-02", "3"), ("b", "2026-01-03", "10"), ("c", "2026-01-01", "10")]
            .iter()
            .map(|(id, time, units)| json!({"jobId": id, "createTime": time, "output": {"units": units}}))
            .collect();
        let ids = |page: &Page<Value>| -> Vec<String> {
            page.items
                .iter()
                .map(|job| job["jobId"].as_str().unwrap().to_string())
                .collect()
        };
        let key = |job: &Value| job["jobId"].as_str().unwrap().to_string();
        let mut params = ListParams {
            order_by: Some("createTime desc".into()),
            page_size: Some(2),
            ..Default::default()
        };
        let first = params.page(jobs.clone(), key).unwrap();
        assert_eq!(ids(&first), ["b", "a"]);
        params.page_token = first.next_page_token;
        assert_eq!(ids(&params.page(jobs.clone(), key).unwrap()), ["c"]);
        // Numbers in strings compare as numbers; ties fall to the next key.
        params.page_token = None;
        params.page_size = None;
        params.order_by = Some("output.units desc, createTime".into());
        assert_eq!(
            ids(&params.page(jobs.clone(), key).unwrap()),
            ["c", "b", "a"]
        );
        for bad in ["createTime sideways", "create-time", "labels.'x'"] {
            params.order_by = Some(bad.into());
            let error = params.page(jobs.clone(), key).unwrap_err().to_string();
            assert!(error.contains("orderBy") && error.contains(bad), "{error}");
        }
    }

    #[test]
    fn pages_follow_tokens_and_clamp_sizes() {
        let names: Vec<String> = (0..250).map(|index| format!("m{index:03}")).collect();
        let mut params = ListParams::default();
        let first = params.page(names.clone(), String::clone).unwrap();
        assert_eq!(first.items.len(), DEFAULT_PAGE_SIZE);
        params.page_size = Some(1000);
        params.page_token = first.next_page_token;
        let second = params.page(names.clone(), String::clone).unwrap();
        assert_eq!(second.items.len(), MAX_PAGE_SIZE);
        assert_eq!(second.items[0], "m020");
        params.page_token = second.next_page_token;
        let third = params.page(names.clone(), String::clone).unwrap();
        assert_eq!(third.items.len(), MAX_PAGE_SIZE);
        params.page_token = third.next_page_token;
        let last = params.page(names.clone(), String::clone).unwrap();
        assert_eq!(last.items.len(), 250 - 220);
        assert_eq!(last.items.last().unwrap(), "m249");
        assert!(last.next_page_token.is_none());
        params.page_token = Some("bogus!".into());
        assert!(params.page(names.clone(), String::clone).is_err());
        params.page_token = None;
        params.page_size = Some(-1);
        assert!(params.page(names, String::clone).is_err());
    }
}
