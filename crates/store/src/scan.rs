//! The SQL of a list page: one table's documents in a scope, narrowed by a [`Contains`], sorted by
//! an [`Order`] (or in the list's own order), after the row a page token names, at most so many.
//!
//! Paging is by key, not by offset: the row after which a page starts is looked up by its key,
//! and the page holds the rows that sort after it, so rows created or deleted meanwhile shift
//! nothing. A sort key becomes three columns per field, its kind, its number and its text, which
//! the database compares as [`Order::compare`] compares in memory.

use crate::session::{Dialect, Param};
use crate::{Contains, Order};

/// What a list scan reads: the rows after the one keyed `after` (from the first when `None`) in
/// `order` (the list's own when empty), whose stored text satisfies `contains`; at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    /// The key of the row the page starts after.
    pub after: Option<&'a str>,
    /// What the stored text must hold.
    pub contains: &'a Contains,
    /// The sort.
    pub order: &'a Order,
    /// The most rows to return.
    pub limit: usize,
}

/// Where a list reads, and what its query selects.
pub(crate) struct Listing<'a> {
    /// The table.
    pub table: &'a str,
    /// The columns that scope the list, bound to `$1`, `$2`, … in this order.
    pub scope: &'a [&'a str],
    /// The column that names a row in its scope, which `after` is.
    pub key: &'a str,
    /// Whether `key` is an integer column (`after` is then its decimal text).
    pub numbered: bool,
    /// The column of the list's own order, which breaks ties.
    pub own: &'a str,
    /// Whether the list's own order is descending (newest first).
    pub newest_first: bool,
    /// What the query selects of each page row `r` (columns `k`, `body`) and of what is joined.
    pub select: &'a str,
    /// Tables joined to `r`, as SQL (may use the scope's parameters), or empty.
    pub join: &'a str,
}

/// A page query's text and the parameters it takes after the scope's.
pub(crate) struct PageQuery {
    /// The SQL.
    pub sql: String,
    limit: i64,
    after: Option<String>,
    patterns: Vec<String>,
}

impl PageQuery {
    /// Every parameter of the query: the scope's values, then the page's.
    pub fn params<'p>(&'p self, scope: &[Param<'p>]) -> Vec<Param<'p>> {
        let mut params = scope.to_vec();
        params.push(self.limit.into());
        params.extend(self.after.as_ref().map(Param::from));
        params.extend(self.patterns.iter().map(Param::from));
        params
    }
}

impl<'a> Listing<'a> {
    /// The documents of `table` in the scope of the `scope` columns, named by `key`, in the
    /// order of `own`, selected alone.
    pub fn of(table: &'a str, scope: &'a [&'a str], key: &'a str, own: &'a str) -> Self {
        Listing {
            table,
            scope,
            key,
            numbered: false,
            own,
            newest_first: false,
            select: "r.body",
            join: "",
        }
    }

    /// The query of the page `scan` asks for, in `dialect`.
    pub fn page(&self, dialect: Dialect, scan: &Scan<'_>) -> PageQuery {
        let scope = self
            .scope
            .iter()
            .enumerate()
            .map(|(index, column)| format!("{column} = ${}", index + 1))
            .chain(["TRUE".to_string()])
            .collect::<Vec<_>>()
            .join(" AND ");
        let limit = format!("${}", self.scope.len() + 1);
        let after = scan.after.map(|_| match self.numbered {
            true => format!("CAST(CAST(${} AS TEXT) AS BIGINT)", self.scope.len() + 2),
            false => format!("${}", self.scope.len() + 2),
        });
        let first_pattern = self.scope.len() + 2 + usize::from(after.is_some());
        let (contains, patterns) = contains_sql(scan.contains, first_pattern);
        let fields = Fields {
            dialect,
            order: scan.order,
        };
        let (table, key, own) = (self.table, self.key, self.own);
        let raw = fields.raw();
        // The rows subquery reads each document's sort fields once; with a sort, it is kept from
        // being merged into the outer query, which would read them again for every comparison.
        let fence = match (scan.order.is_empty(), dialect) {
            (true, _) => "",
            (false, Dialect::Sqlite) => " LIMIT -1 OFFSET 0",
            (false, Dialect::Postgres) => " OFFSET 0",
        };
        let rows = format!(
            "SELECT {key} AS k, body, {own} AS own{raw} FROM {table} \
             WHERE {scope} AND {contains}{fence}"
        );
        let mut components = fields.components("r");
        components.push(("r.own".to_string(), self.newest_first));
        let start = match &after {
            None => "TRUE".to_string(),
            Some(after) => {
                let mut bounds = fields.components("a");
                bounds.push(("a.own".to_string(), self.newest_first));
                let from = format!(
                    "(SELECT {own} AS own{raw} FROM {table} WHERE {scope} AND {key} = {after}) a"
                );
                keyset(&components, &bounds, &from)
            }
        };
        let order = components
            .iter()
            .map(|(column, descending)| match descending {
                true => format!("{column} DESC"),
                false => column.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (select, join) = (self.select, self.join);
        PageQuery {
            sql: format!(
                "SELECT {select} FROM ({rows}) r {join} WHERE {start} ORDER BY {order} LIMIT {limit}"
            ),
            limit: i64::try_from(scan.limit).unwrap_or(i64::MAX),
            after: scan.after.map(str::to_string),
            patterns,
        }
    }
}

/// The condition that the row's `components` sort after `bounds`, the same columns of the row
/// a page starts after, which `from` selects as `a`: the first component that differs decides.
fn keyset(components: &[(String, bool)], bounds: &[(String, bool)], from: &str) -> String {
    let bound = |index: usize| format!("(SELECT {} FROM {from})", bounds[index].0);
    (0..components.len())
        .map(|index| {
            let mut terms: Vec<String> = (0..index)
                .map(|earlier| format!("{} = {}", components[earlier].0, bound(earlier)))
                .collect();
            let (column, descending) = &components[index];
            let after = if *descending { "<" } else { ">" };
            terms.push(format!("{column} {after} {}", bound(index)));
            format!("({})", terms.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The sort fields of an [`Order`] as SQL in one dialect.
struct Fields<'a> {
    dialect: Dialect,
    order: &'a Order,
}

impl Fields<'_> {
    /// The columns the rows subquery reads from each document: `v{i}` (the field's value) and,
    /// in SQLite, `t{i}` (its JSON type).
    fn raw(&self) -> String {
        self.order
            .keys()
            .iter()
            .enumerate()
            .map(|(index, key)| match self.dialect {
                Dialect::Sqlite => {
                    let path = format!("'$.{}'", key.path().join("."));
                    format!(
                        ", json_extract(body, {path}) AS v{index}, json_type(body, {path}) AS t{index}"
                    )
                }
                Dialect::Postgres => format!(
                    ", (CAST(body AS json) #> '{{{}}}') AS v{index}",
                    key.path().join(",")
                ),
            })
            .collect()
    }

    /// The columns a row of `alias` sorts by, with whether each is descending: per field, its
    /// kind, its number and its text.
    fn components(&self, alias: &str) -> Vec<(String, bool)> {
        let mut components = Vec::new();
        for (index, key) in self.order.keys().iter().enumerate() {
            let value = format!("{alias}.v{index}");
            let [kind, number, text] = match self.dialect {
                Dialect::Sqlite => sqlite_field(&value, &format!("{alias}.t{index}")),
                Dialect::Postgres => postgres_field(&value),
            };
            for column in [kind, number, text] {
                components.push((column, key.descending()));
            }
        }
        components
    }
}

/// Kind, number and text of a SQLite JSON value `value` of JSON type `kind`.
fn sqlite_field(value: &str, kind: &str) -> [String; 3] {
    let integer = format!(
        "(({value} GLOB '[0-9]*' AND {value} NOT GLOB '*[^0-9]*') \
         OR ({value} GLOB '-[0-9]*' AND substr({value}, 2) NOT GLOB '*[^0-9]*'))"
    );
    let number = format!("({kind} IN ('integer', 'real') OR ({kind} = 'text' AND {integer}))");
    [
        format!(
            "(CASE WHEN {kind} IS NULL OR {kind} = 'null' THEN 0 WHEN {number} THEN 1 \
             WHEN {kind} IN ('text', 'true', 'false') THEN 2 ELSE 3 END)"
        ),
        format!("(CASE WHEN {number} THEN CAST({value} AS REAL) ELSE 0.0 END)"),
        format!(
            "(CASE WHEN {kind} = 'text' THEN {value} \
             WHEN {kind} IN ('true', 'false') THEN {kind} ELSE '' END)"
        ),
    ]
}

/// Kind, number and text of a PostgreSQL `json` value `value` (`json`, not `jsonb`: a document
/// is read for one field, which `json` does without building the whole tree).
fn postgres_field(value: &str) -> [String; 3] {
    let kind = format!("json_typeof({value})");
    let text = format!("({value} #>> '{{}}')");
    let number = format!("({kind} = 'number' OR ({kind} = 'string' AND {text} ~ '^-?[0-9]+$'))");
    [
        format!(
            "(CASE WHEN {kind} IS NULL OR {kind} = 'null' THEN 0 WHEN {number} THEN 1 \
             WHEN {kind} IN ('string', 'boolean') THEN 2 ELSE 3 END)"
        ),
        format!("(CASE WHEN {number} THEN CAST({text} AS DOUBLE PRECISION) ELSE 0 END)"),
        format!(
            "((CASE WHEN {kind} IN ('string', 'boolean') THEN {text} ELSE '' END) COLLATE \"C\")"
        ),
    ]
}

/// A [`Contains`] as a SQL condition on `body`, its `LIKE` patterns bound from `$first` on.
pub(crate) fn contains_sql(contains: &Contains, first: usize) -> (String, Vec<String>) {
    let mut patterns = Vec::new();
    let mut pattern = |text: &str| {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        patterns.push(format!("%{escaped}%"));
        format!("body LIKE ${} ESCAPE '\\'", first + patterns.len() - 1)
    };
    let groups: Vec<String> = contains
        .all_of
        .iter()
        .map(|group| {
            let members: Vec<String> = group
                .iter()
                .map(|strings| {
                    let all: Vec<String> = strings.iter().map(|text| pattern(text)).collect();
                    match all.is_empty() {
                        true => "TRUE".to_string(),
                        false => format!("({})", all.join(" AND ")),
                    }
                })
                .collect();
            match members.is_empty() {
                true => "FALSE".to_string(),
                false => format!("({})", members.join(" OR ")),
            }
        })
        .collect();
    let sql = match groups.is_empty() {
        true => "TRUE".to_string(),
        false => groups.join(" AND "),
    };
    (sql, patterns)
}
