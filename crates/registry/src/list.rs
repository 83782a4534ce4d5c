//! List parameters: `filter`, `orderBy`, `pageSize`, `pageToken`.
//!
//! The filter language is Google's ([`filter`]), so a gcloud filter lists what it lists on ML
//! Engine.
//!
//! `orderBy` (as Vertex AI's list methods take it; ML Engine's lists have a fixed order) is a comma
//! list of field paths, each optionally followed by `desc` or `asc`: `createTime desc`. Values
//! compare as [`kiln_store::order`] says, ties keep the list's own order, and page tokens name the
//! last item shown, so paging follows any order. Lists the store holds are filtered, sorted and
//! paged by the database ([`ListParams::scan`]); the few small ones made in memory use
//! [`ListParams::page`].

use base64::Engine;
use serde_json::Value;

use kiln_store::{Order, Scan, SortKey};

use crate::RegistryError;

mod filter;
pub use filter::Filter;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
