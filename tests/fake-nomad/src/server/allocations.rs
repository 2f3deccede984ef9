//! `GET /v1/allocations`: the stub listing of a namespace (or all), filtered by prefix and by a
//! go-bexpr subset, cut in pages by Nomad's paginator.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::blocking::{Answer, Read};
use super::text;
use crate::json;
use crate::model::Capability;

/// What the listing takes from the query string beside a blocking read's parameters.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    namespace: Option<String>,
    prefix: Option<String>,
    filter: Option<String>,
    task_states: Option<bool>,
    resources: Option<bool>,
    per_page: Option<String>,
    next_token: Option<String>,
}

/// One page of `items` (already in the list's order), as Nomad's paginator cuts it: items whose
/// token sorts before `next_token` are skipped, `per_page` (0: all) are kept, and the token of
/// the item after them is the next page's. `token` gives an item's token and compares it with
/// the target.
fn page<T>(
    items: Vec<T>,
    per_page: usize,
    next_token: Option<&str>,
    token: impl Fn(&T, &str) -> (String, std::cmp::Ordering),
) -> (Vec<T>, Option<String>) {
    let mut kept = Vec::new();
    let mut found = next_token.is_none_or(str::is_empty);
    for item in items {
        let (item_token, compared) = token(&item, next_token.unwrap_or_default());
        if !found && compared == std::cmp::Ordering::Less {
            continue;
        }
        found = true;
        if per_page != 0 && kept.len() == per_page {
            return (kept, Some(item_token));
        }
        kept.push(item);
    }
    (kept, None)
}

/// `CreateIndexAndIDTokenizer`: `<CreateIndex>.<ID>`, compared by index as a number, then by ID.
fn create_index_and_id_token(
    create_index: u64,
    id: &str,
    target: &str,
) -> (String, std::cmp::Ordering) {
    let token = format!("{create_index}.{id}");
    let compared = match target.split_once('.') {
        Some((index, target_id)) => match index.parse::<u64>() {
            Ok(index) => create_index.cmp(&index).then_with(|| id.cmp(target_id)),
            Err(_) => token.as_str().cmp(target),
        },
        None => token.as_str().cmp(target),
    };
    (token, compared)
}

pub(super) async fn allocations(read: Read, Query(query): Query<ListQuery>) -> Response {
    let filter = match query.filter.as_deref().map(Filter::parse).transpose() {
        Ok(f) => f,
        Err(message) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("failed to read filter expression: {message}"),
            );
        }
    };
    let namespace = query
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let per_page = match query.per_page.as_deref().map(str::parse::<i32>).transpose() {
        Ok(per_page) => usize::try_from(per_page.unwrap_or(0)).unwrap_or(0),
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "Expect a number for `per_page` query string parameter",
            );
        }
    };
    // `*` lists what the token may read; a namespace named must be readable as a whole.
    let needs = if namespace == "*" {
        Vec::new()
    } else {
        vec![Capability::read_job(&namespace)]
    };
    read.answer(&needs, |cluster, p| {
        let mut matching: Vec<_> = cluster
            .allocations
            .values()
            .filter(|a| namespace == "*" || a.namespace == namespace)
            .filter(|a| p.allows(Capability::read_job(&a.namespace)))
            .filter(|a| {
                query
                    .prefix
                    .as_ref()
                    .is_none_or(|pre| a.id.starts_with(pre))
            })
            .filter(|a| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&json::allocation(a, true)))
            })
            .collect();
        let (matching, next_token) = if query.prefix.is_some() {
            matching.sort_by(|a, b| a.id.cmp(&b.id));
            // `IDTokenizer`.
            page(
                matching,
                per_page,
                query.next_token.as_deref(),
                |a, target| (a.id.clone(), a.id.as_str().cmp(target)),
            )
        } else {
            matching.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
            page(
                matching,
                per_page,
                query.next_token.as_deref(),
                |a, target| create_index_and_id_token(a.create_index, &a.id, target),
            )
        };
        let stubs = matching
            .into_iter()
            .map(|a| {
                json::allocation_stub(
                    a,
                    query.task_states.unwrap_or(true),
                    query.resources.unwrap_or(false),
                )
            })
            .collect();
        Ok(Answer {
            index: cluster.allocs_table_index,
            body: Value::Array(stubs),
            next_token,
        })
    })
    .await
}

/// The subset of go-bexpr the fake understands: `Selector == "value"` and `!=`, joined by
/// `and`, evaluated against the full allocation (as Nomad's paginator does).
struct Filter {
    clauses: Vec<(Vec<String>, bool, String)>,
}

impl Filter {
    fn parse(expression: &str) -> Result<Filter, String> {
        let clauses = expression
            .split(" and ")
            .map(|clause| {
                let (selector, equal, value) = if let Some((s, v)) = clause.split_once("!=") {
                    (s, false, v)
                } else if let Some((s, v)) = clause.split_once("==") {
                    (s, true, v)
                } else {
                    return Err(format!("unsupported expression {clause:?}"));
                };
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("value {value:?} must be a quoted string"))?;
                let path = selector.trim().split('.').map(str::to_owned).collect();
                Ok((path, equal, value.to_owned()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Filter { clauses })
    }

    fn matches(&self, alloc: &Value) -> bool {
        self.clauses.iter().all(|(path, equal, expected)| {
            let found = path
                .iter()
                .try_fold(alloc, |v, key| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default();
            (found == expected) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_nomads_paginator() {
        let items: Vec<(u64, &str)> = vec![(5, "b"), (5, "c"), (12, "a"), (102, "a")];
        let token =
            |item: &(u64, &str), target: &str| create_index_and_id_token(item.0, item.1, target);
        let (first, next) = page(items.clone(), 2, None, token);
        assert_eq!(first, [(5, "b"), (5, "c")]);
        assert_eq!(next.as_deref(), Some("12.a"));
        // "102" sorts after "12" as a number, not as text.
        let (second, next) = page(items.clone(), 2, next.as_deref(), token);
        assert_eq!(second, [(12, "a"), (102, "a")]);
        assert_eq!(next, None);
        let (all, next) = page(items, 0, None, token);
        assert_eq!((all.len(), next), (4, None));
    }

    #[test]
    fn filters_match_nested_fields() {
        let f = Filter::parse(r#"NodeID == "n1" and Job.ParentID != """#).expect("parses");
        let alloc = serde_json::json!({"NodeID": "n1", "Job": {"ParentID": "p"}});
        assert!(f.matches(&alloc));
        let other = serde_json::json!({"NodeID": "n1", "Job": {"ParentID": ""}});
        assert!(!f.matches(&other));
        assert!(Filter::parse("NodeID matches x").is_err());
    }
}
