//! Keyset pagination with opaque, signed cursors. Lists are ordered newest first by their
//! prefixed ULID ids (which sort by creation time); a cursor encodes the last key of a page,
//! so pages stay stable while rows are added.
//!
//! A cursor is bound to the list that issued it and signed: `v2.<payload>.<tag>`, where the
//! payload is base64url of `<list>\n<last key>` and the tag the first 16 bytes of
//! HMAC-SHA256 over the payload, keyed with a key derived from `TOKEN_SEALING_KEY`
//! ([`SealingKey::derive_key`]). A cursor of another list (a `/agents` cursor sent to
//! `/conversations`) or an edited one is a 400 naming `cursor`, instead of silently paging
//! from a key that means something else there. Rotating the sealing key invalidates
//! outstanding cursors (clients start from the first page again).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use super::{ApiError, FieldError};
use crate::{crypto::SealingKey, db::PageRequest};

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 200;
/// The longest cursor accepted (the ones issued are far shorter).
pub const MAX_CURSOR_LEN: usize = 512;
const CURSOR_VERSION: &str = "v2";
const TAG_LEN: usize = 16;
const KEY_PURPOSE: &str = "pagination cursors v2";

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Issues and checks the cursors of one list.
#[derive(Clone)]
pub struct Cursors {
    list: String,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

impl Cursors {
    /// The cursors of the list named `list` (e.g. `agents`, or `archives:pn_…` for a list
    /// under one parent), signed with a key derived from the sealing key.
    pub fn new(key: &SealingKey, list: impl Into<String>) -> Self {
        let derived = key.derive_key(KEY_PURPOSE);
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&derived)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Self {
            list: list.into(),
            mac,
        }
    }

    fn tag(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(payload.as_bytes());
        mac
    }

    /// The cursor of the page that follows the row with this key.
    pub fn encode(&self, last_key: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!("{}\n{last_key}", self.list));
        let tag = self.tag(&payload).finalize().into_bytes();
        format!(
            "{CURSOR_VERSION}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The key a cursor of this list carries; 400 naming `cursor` otherwise.
    pub fn decode(&self, cursor: &str) -> Result<String, ApiError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(not_ours());
        }
        let mut parts = cursor.split('.');
        let (Some(CURSOR_VERSION), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(not_ours());
        };
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| not_ours())?;
        // The length first: `verify_truncated_left` would accept a one-byte tag.
        if tag.len() != TAG_LEN {
            return Err(not_ours());
        }
        self.tag(payload)
            .verify_truncated_left(&tag)
            .map_err(|_| not_ours())?;
        let text = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(not_ours)?;
        let Some((list, key)) = text.split_once('\n') else {
            return Err(not_ours());
        };
        if list != self.list {
            return Err(refused(
                "belongs to another list: a cursor only pages the list that returned it",
            ));
        }
        if key.is_empty() {
            return Err(not_ours());
        }
        Ok(key.to_owned())
    }
}

/// A cursor refused: 400 naming `cursor`.
fn refused(message: &str) -> ApiError {
    ApiError::BadRequest {
        detail: format!("cursor {message}"),
        errors: vec![FieldError::new("cursor", message)],
    }
}

/// A cursor this API did not issue (or not in this form).
fn not_ours() -> ApiError {
    refused("is not a cursor this API issued (pass `next_cursor` as is)")
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
    /// to learn whether there is a next page) and the limit itself. A limit out of range is
    /// a 422; a cursor of another list, or tampered with, a 400.
    pub fn into_request(self, cursors: &Cursors) -> Result<(PageRequest, u32), ApiError> {
        self.into_keyed_request(cursors, |key| Some(key.to_owned()))
    }

    /// Like [`Self::into_request`] for a list whose key is more than an id (the conversation
    /// list's `(last activity, id)`): `parse` reads the cursor's key, and a key it refuses is
    /// a 400 naming `cursor` like any other cursor this API did not issue for this list.
    pub fn into_keyed_request<K>(
        self,
        cursors: &Cursors,
        parse: impl FnOnce(&str) -> Option<K>,
    ) -> Result<(PageRequest<K>, u32), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before = match self.cursor {
            Some(cursor) => {
                let key = cursors.decode(cursor)?;
                Some(parse(&key).ok_or_else(not_ours)?)
            }
            None => None,
        };
        Ok((
            PageRequest {
                before,
                fetch: i64::from(limit) + 1,
            },
            limit,
        ))
    }
}

/// One list request's paging: the validated `?limit=` and `?cursor=`, and the cursors that
/// sign the next page's. Every list handler goes through it, in three lines:
///
/// ```ignore
/// let paging = Paging::new(&state.sealing_key, "agents", query.limit, query.cursor.as_deref())?;
/// let rows = agents::list(&client, &tenant.user_id, paging.request()).await?;
/// Ok(Json(paging.page(rows, |a| a.agent_id.to_string())))
/// ```
#[derive(Debug)]
pub struct Paging<K = String> {
    cursors: Cursors,
    request: PageRequest<K>,
    limit: u32,
}

impl Paging {
    /// Checks the parameters of the list named `list` (see [`Cursors::new`]): a limit out of
    /// range is a 422, a cursor of another list or tampered with a 400, both naming the
    /// parameter.
    pub fn new(
        key: &SealingKey,
        list: impl Into<String>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        Self::keyed(key, list, limit, cursor, |key| Some(key.to_owned()))
    }
}

impl<K> Paging<K> {
    /// Like [`Paging::new`] for a list whose key is more than an id (the conversation
    /// list's `(last activity, id)`): `parse` reads the cursor's key, and a key it refuses
    /// is a 400 naming `cursor`.
    pub fn keyed(
        key: &SealingKey,
        list: impl Into<String>,
        limit: Option<u32>,
        cursor: Option<&str>,
        parse: impl FnOnce(&str) -> Option<K>,
    ) -> Result<Self, ApiError> {
        let cursors = Cursors::new(key, list);
        let (request, limit) = PageParams { limit, cursor }.into_keyed_request(&cursors, parse)?;
        Ok(Self {
            cursors,
            request,
            limit,
        })
    }

    /// What the database query takes: the key to start below and how many rows to fetch
    /// (one more than the limit, to learn whether a next page exists).
    pub fn request(&self) -> &PageRequest<K> {
        &self.request
    }

    /// The page size asked for (checked: 1 to [`MAX_LIMIT`]).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The page of the rows fetched for [`Paging::request`]; `key` is a row's sort key, the
    /// one the next page's cursor carries.
    pub fn page<R, T: From<R>>(&self, rows: Vec<R>, key: impl Fn(&R) -> String) -> Page<T> {
        Page::from_rows(rows, self.limit, &self.cursors, key, T::from)
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched for it.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: u32,
        cursors: &Cursors,
        key: impl Fn(&R) -> String,
        to_item: impl Fn(R) -> T,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| cursors.encode(&key(last)))
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(to_item).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_bytes(&[3u8; 32]).expect("32 bytes")
    }

    fn refusal(cursors: &Cursors, cursor: &str) -> ApiError {
        PageParams {
            limit: None,
            cursor: Some(cursor),
        }
        .into_request(cursors)
        .expect_err("refused")
    }

    #[test]
    fn a_cursor_round_trips_to_the_last_id_of_a_full_page() {
        let cursors = Cursors::new(&key(), "agents");
        let rows = vec!["c", "b", "a"];
        let page: Page<&str> = Page::from_rows(rows, 2, &cursors, |r| (*r).to_owned(), |r| r);
        assert_eq!(page.items, vec!["c", "b"]);
        let cursor = page.next_cursor.expect("more rows exist");
        let (request, _) = PageParams {
            limit: Some(2),
            cursor: Some(&cursor),
        }
        .into_request(&cursors)
        .expect("valid");
        assert_eq!(request.before.as_deref(), Some("b"));
        assert_eq!(request.fetch, 3);
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let cursors = Cursors::new(&key(), "agents");
        let page: Page<&str> =
            Page::from_rows(vec!["b", "a"], 2, &cursors, |r| (*r).to_owned(), |r| r);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn a_cursor_of_another_list_is_a_400_naming_cursor() {
        let agents = Cursors::new(&key(), "agents");
        let conversations = Cursors::new(&key(), "conversations");
        let error = refusal(&conversations, &agents.encode("agt_01"));
        assert_eq!(error.status().as_u16(), 400);
        let problem = error.problem();
        assert_eq!(problem.errors[0].field, "cursor");
        assert!(
            problem.errors[0].message.contains("another list"),
            "{problem:?}"
        );
    }

    #[test]
    fn tampered_forged_and_foreign_key_cursors_are_400s() {
        let cursors = Cursors::new(&key(), "agents");
        let genuine = cursors.encode("agt_01jd0000000000000000000000");
        let (_, tag) = genuine.rsplit_once('.').expect("has a tag");
        // Another key in the payload, with the genuine tag.
        let forged_payload = URL_SAFE_NO_PAD.encode("agents\nagt_zzzz");
        let other_key = Cursors::new(
            &SealingKey::from_bytes(&[4u8; 32]).expect("32 bytes"),
            "agents",
        );
        let v1 = URL_SAFE_NO_PAD.encode("v1:agt_01jd0000000000000000000000");
        let long = "v2.".repeat(400);
        for cursor in [
            format!("v2.{forged_payload}.{tag}"),
            other_key.encode("agt_01jd0000000000000000000000"),
            format!("{genuine}x"),
            genuine.replacen("v2", "v3", 1),
            v1,
            "garbage!".to_owned(),
            String::new(),
            long,
        ] {
            let error = refusal(&cursors, &cursor);
            assert_eq!(error.status().as_u16(), 400, "cursor {cursor:?}");
            assert_eq!(
                error.problem().errors[0].field,
                "cursor",
                "cursor {cursor:?}"
            );
        }
    }

    #[test]
    fn a_signed_cursor_whose_key_the_list_cannot_read_is_a_400_naming_cursor() {
        let cursors = Cursors::new(&key(), "conversations");
        let parse = |key: &str| key.parse::<i64>().ok();
        let error = PageParams {
            limit: None,
            cursor: Some(&cursors.encode("not a number")),
        }
        .into_keyed_request(&cursors, parse)
        .expect_err("refused");
        assert_eq!(error.status().as_u16(), 400);
        assert_eq!(error.problem().errors[0].field, "cursor");
        let (request, _) = PageParams {
            limit: None,
            cursor: Some(&cursors.encode("42")),
        }
        .into_keyed_request(&cursors, parse)
        .expect("a key it reads");
        assert_eq!(request.before, Some(42));
    }

    #[test]
    fn limits_out_of_range_are_422s_naming_limit() {
        let cursors = Cursors::new(&key(), "agents");
        for limit in [0, 201] {
            let error = PageParams {
                limit: Some(limit),
                cursor: None,
            }
            .into_request(&cursors)
            .expect_err("out of range");
            assert_eq!(error.status().as_u16(), 422);
            assert_eq!(error.problem().errors[0].field, "limit");
        }
    }
}
