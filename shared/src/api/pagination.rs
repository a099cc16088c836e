//! Keyset pagination with opaque cursors. Lists are ordered newest first by their prefixed
//! ULID ids (which sort by creation time); a cursor encodes the last id of a page, so pages
//! stay stable while rows are added.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::db::PageRequest;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 200;
const CURSOR_PREFIX: &str = "v1:";

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `?limit=` and `?cursor=` as received.
#[derive(Debug, Clone, Copy)]
pub struct PageParams<'a> {
    /// Items per page, 1 to 200.
    pub limit: Option<u32>,
    /// A cursor from a previous page's `next_cursor`.
    pub cursor: Option<&'a str>,
}

impl PageParams<'_> {
    /// Validates the parameters into a database page request (one row more than the limit,
    /// to learn whether there is a next page) and the limit itself.
    pub fn into_request(self) -> Result<(PageRequest, u32), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before = self.cursor.map(decode_cursor).transpose()?;
        Ok((
            PageRequest {
                before,
                fetch: i64::from(limit) + 1,
            },
            limit,
        ))
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched for it.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: u32,
        key: impl Fn(&R) -> String,
        to_item: impl Fn(R) -> T,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(to_item).collect(),
            next_cursor,
        }
    }
}

fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX).map(str::to_owned))
        .filter(|key| !key.is_empty() && key.len() <= 200)
        .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API issued"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_to_the_last_id_of_a_full_page() {
        let rows = vec!["c", "b", "a"];
        let page: Page<&str> = Page::from_rows(rows, 2, |r| (*r).to_owned(), |r| r);
        assert_eq!(page.items, vec!["c", "b"]);
        let cursor = page.next_cursor.expect("more rows exist");
        let (request, _) = PageParams {
            limit: Some(2),
            cursor: Some(&cursor),
        }
        .into_request()
        .expect("valid");
        assert_eq!(request.before.as_deref(), Some("b"));
        assert_eq!(request.fetch, 3);
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let page: Page<&str> = Page::from_rows(vec!["b", "a"], 2, |r| (*r).to_owned(), |r| r);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn limits_and_cursors_are_validated() {
        for limit in [0, 201] {
            let error = PageParams {
                limit: Some(limit),
                cursor: None,
            }
            .into_request()
            .expect_err("out of range");
            assert_eq!(error.problem().errors[0].field, "limit");
        }
        let error = PageParams {
            limit: None,
            cursor: Some("garbage!"),
        }
        .into_request()
        .expect_err("bad cursor");
        assert_eq!(error.problem().errors[0].field, "cursor");
    }
}
