//! The contact filters of `GET /contacts`, `GET /contacts/export` and the bulk tag change.
//! Tag filters repeat (`?tag=a&tag=b`), which serde's query deserializer cannot read, so
//! the query string is parsed here, with the same rules as the shared `Query` extractor:
//! an unknown parameter, a bad value or `%00` is a 422 naming the parameter.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::Deserialize;
use shared::{
    api::{ApiError, FieldError, FieldErrors},
    db::contacts::ContactFilter,
    domain::{ContactSource, Tag, contains_nul},
};
use utoipa::{IntoParams, ToSchema};

/// The most tags one filter parameter may list.
pub const MAX_FILTER_TAGS: usize = 50;
/// The longest `search` accepted.
pub const MAX_SEARCH_CHARS: usize = 100;

/// Filters of the contact list (documentation of the query string; parsed by
/// [`ContactQuery`]).
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ContactFilterParams {
    /// Contacts carrying every one of these tags (repeat the parameter: `tag=a&tag=b`).
    #[param(max_items = 50)]
    pub tag: Option<Vec<String>>,
    /// Contacts carrying at least one of these tags (repeatable).
    #[param(max_items = 50)]
    pub any_tag: Option<Vec<String>>,
    /// Contacts carrying none of these tags (repeatable).
    #[param(max_items = 50)]
    pub exclude_tag: Option<Vec<String>>,
    /// Name or email containing this text (case-insensitive), or a phone starting with its
    /// digits (`+33 6`, `336`).
    #[param(min_length = 1, max_length = 100)]
    pub search: Option<String>,
    /// Where contacts came from.
    pub source: Option<ContactSource>,
    /// Opted out (`true`) or not (`false`).
    pub opted_out: Option<bool>,
    /// Active contacts (default `true`); `false` lists deleted ones.
    pub is_active: Option<bool>,
}

/// Paging of the contact list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQueryParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 512)]
    pub cursor: Option<String>,
}

/// The parsed query string of a contact list or export.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    pub filter: ContactFilter,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ContactQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default(), true)
    }
}

/// The filter of a bulk tag change (a JSON object with the same names; tag lists as
/// arrays).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[schema(max_items = 50)]
    pub tag: Option<Vec<String>>,
    #[schema(max_items = 50)]
    pub any_tag: Option<Vec<String>>,
    #[schema(max_items = 50)]
    pub exclude_tag: Option<Vec<String>>,
    #[schema(min_length = 1, max_length = 100)]
    pub search: Option<String>,
    pub source: Option<ContactSource>,
    pub opted_out: Option<bool>,
    pub is_active: Option<bool>,
}

impl FilterBody {
    /// Validates into a filter; errors are named `<prefix>.<field>`.
    pub fn into_filter(self, prefix: &str, errors: &mut FieldErrors) -> ContactFilter {
        let mut filter = ContactFilter {
            source: self.source,
            opted_out: self.opted_out,
            is_active: self.is_active,
            ..ContactFilter::default()
        };
        for (name, values, target) in [
            ("tag", self.tag, &mut filter.all_tags),
            ("any_tag", self.any_tag, &mut filter.any_tags),
            ("exclude_tag", self.exclude_tag, &mut filter.exclude_tags),
        ] {
            let values = values.unwrap_or_default();
            if values.len() > MAX_FILTER_TAGS {
                errors.push(
                    &format!("{prefix}.{name}"),
                    format!("must list at most {MAX_FILTER_TAGS} tags"),
                );
            }
            for (i, value) in values.iter().enumerate() {
                if let Some(tag) = errors.check(&format!("{prefix}.{name}[{i}]"), Tag::parse(value))
                {
                    target.push(tag.as_str().to_owned());
                }
            }
        }
        if let Some(search) = self.search {
            match check_search(&search) {
                Ok(search) => filter.search = Some(search),
                Err(message) => errors.push(&format!("{prefix}.search"), message),
            }
        }
        filter
    }
}

fn check_search(raw: &str) -> Result<String, String> {
    let search = raw.trim();
    if search.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if search.chars().count() > MAX_SEARCH_CHARS {
        return Err(format!("must be at most {MAX_SEARCH_CHARS} characters"));
    }
    Ok(search.to_owned())
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be `true` or `false`".to_owned()),
    }
}

/// Parses a contact query string; `paged` accepts `limit` and `cursor`.
pub fn parse(query: &str, paged: bool) -> Result<ContactQuery, ApiError> {
    let mut out = ContactQuery::default();
    let mut errors = FieldErrors::default();
    let mut seen_single: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if contains_nul(&name) || contains_nul(&value) {
            let field = name.replace('\0', "\u{FFFD}");
            return Err(ApiError::Validation(vec![FieldError::new(
                field,
                "must not contain NUL (U+0000)",
            )]));
        }
        let single = !matches!(name.as_ref(), "tag" | "any_tag" | "exclude_tag");
        if single {
            if seen_single.iter().any(|n| n == name.as_ref()) {
                errors.push(&name, "is given more than once");
                continue;
            }
            seen_single.push(name.to_string());
        }
        match name.as_ref() {
            "tag" | "any_tag" | "exclude_tag" => {
                let target = match name.as_ref() {
                    "tag" => &mut out.filter.all_tags,
                    "any_tag" => &mut out.filter.any_tags,
                    _ => &mut out.filter.exclude_tags,
                };
                if target.len() == MAX_FILTER_TAGS {
                    errors.push(
                        &name,
                        format!("may be given at most {MAX_FILTER_TAGS} times"),
                    );
                    continue;
                }
                if let Some(tag) = errors.check(&name, Tag::parse(&value)) {
                    target.push(tag.as_str().to_owned());
                }
            }
            "search" => out.filter.search = errors.check("search", check_search(&value)),
            "source" => {
                out.filter.source = errors.check(
                    "source",
                    value
                        .parse::<ContactSource>()
                        .map_err(|e| format!("must be one of {}", e.expected)),
                );
            }
            "opted_out" => out.filter.opted_out = errors.check("opted_out", parse_bool(&value)),
            "is_active" => out.filter.is_active = errors.check("is_active", parse_bool(&value)),
            "limit" if paged => {
                out.limit = errors.check(
                    "limit",
                    value
                        .parse::<u32>()
                        .map_err(|_| "must be a whole number between 1 and 200".to_owned()),
                );
            }
            "cursor" if paged => out.cursor = Some(value.into_owned()),
            other => errors.push(other, "is not a known parameter"),
        }
    }
    errors.into_result()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_tags_are_normalised_and_single_parameters_are_checked() {
        let query = parse(
            "tag=VIP&tag=%20lead%20&any_tag=a&exclude_tag=c&search=ana&source=IMPORT&opted_out=false&limit=10",
            true,
        )
        .expect("valid");
        assert_eq!(query.filter.all_tags, vec!["vip", "lead"]);
        assert_eq!(query.filter.any_tags, vec!["a"]);
        assert_eq!(query.filter.exclude_tags, vec!["c"]);
        assert_eq!(query.filter.search.as_deref(), Some("ana"));
        assert_eq!(query.filter.source, Some(ContactSource::Import));
        assert_eq!(query.filter.opted_out, Some(false));
        assert_eq!(query.limit, Some(10));
    }

    #[test]
    fn bad_parameters_are_422s_naming_them() {
        for (query, field) in [
            ("tag=", "tag"),
            ("source=manual", "source"),
            ("opted_out=yes", "opted_out"),
            ("colour=red", "colour"),
            ("search=a&search=b", "search"),
            ("limit=ten", "limit"),
            ("search=%00", "search"),
        ] {
            let error = parse(query, true).expect_err(query);
            assert_eq!(error.status().as_u16(), 422, "{query}");
            assert_eq!(error.problem().errors[0].field, field, "{query}");
        }
        let error = parse("limit=5", false).expect_err("export takes no limit");
        assert_eq!(error.problem().errors[0].field, "limit");
    }
}
