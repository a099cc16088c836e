//! CSV import (`POST /contacts/import`) and export (`GET /contacts/export`).
//!
//! An import is parsed with the `csv` crate (quoted fields with commas, quotes and
//! newlines; UTF-8 with or without a byte-order mark), every row validated on its own (bad
//! rows are skipped and named, the others written), and the valid rows written with one
//! statement (`shared::db::contacts::import`). A file that is not CSV, is not UTF-8 or has a
//! bad header writes nothing.

use std::collections::HashMap;

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use shared::{
    api::{
        ApiError, ApiState, FieldError, Tenant,
        openapi::responses::{BearerErrors, JsonBodyErrors, QueryErrors},
    },
    db::{
        PageRequest,
        contacts::{self, ContactFilter, ImportRow},
    },
    domain::{ContactCompany, ContactName, Email, PhoneE164, Tag, UserId},
};
use utoipa::ToSchema;

use crate::query::{self, ContactFilterParams};

/// The largest CSV body `POST /contacts/import` takes: 10 MiB (API Gateway's payload
/// limit; see the README for what fits through Lambda).
pub const IMPORT_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// The most rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 200_000;
/// Contacts read per database round trip while exporting.
const EXPORT_PAGE: i64 = 1000;

/// The columns an import may have (`phone` is required; any order).
const IMPORT_COLUMNS: [&str; 5] = ["phone", "name", "email", "company", "tags"];

/// A row that was not imported.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedRow {
    /// The data row, counting from 1 after the header.
    row: u64,
    /// The line of the file it starts on (a quoted field may span lines).
    line: u64,
    /// Why, naming the column: `phone: is not a valid number for its country`,
    /// `phone: duplicate of row 3`.
    reason: String,
}

/// The most skipped rows one answer lists: a file of 200,000 bad rows would otherwise
/// answer over 13 MB, past Lambda's 6 MB response limit, after the import committed.
pub const MAX_SKIPPED_LISTED: usize = 1_000;

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// New contacts (`source` IMPORT).
    created: u64,
    /// Existing contacts the file changed.
    updated: u64,
    /// Valid rows that changed nothing (re-importing a file gives only these).
    unchanged: u64,
    /// Rows not imported, with why: the first 1,000 (`skipped_count` counts them all).
    #[schema(max_items = 1000)]
    skipped: Vec<SkippedRow>,
    /// How many rows were not imported.
    skipped_count: u64,
    /// Tags the contacts gained, counted per contact and tag, all reported by `TAG_ADDED`
    /// events (an import's list up to 200 contacts each, in `contact_ids`).
    tags_added: u64,
}

fn refuse(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, message)])
}

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().eq_ignore_ascii_case("text/csv"))
        .unwrap_or(false)
}

/// The column index of each known field.
#[derive(Debug, Default)]
struct Columns {
    phone: usize,
    name: Option<usize>,
    email: Option<usize>,
    company: Option<usize>,
    tags: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, ApiError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, raw) in header.iter().enumerate() {
        let name = raw.trim().to_lowercase();
        if !IMPORT_COLUMNS.contains(&name.as_str()) {
            let shown: String = raw.chars().take(40).collect();
            return Err(refuse(
                "header",
                format!(
                    "column {} `{shown}` is not a known column: use phone (required), name, email, company, tags",
                    index + 1
                ),
            ));
        }
        if seen.insert(name.clone(), index).is_some() {
            return Err(refuse("header", format!("column `{name}` appears twice")));
        }
    }
    let Some(&phone) = seen.get("phone") else {
        return Err(refuse("header", "has no `phone` column (required)"));
    };
    Ok(Columns {
        phone,
        name: seen.get("name").copied(),
        email: seen.get("email").copied(),
        company: seen.get("company").copied(),
        tags: seen.get("tags").copied(),
    })
}

/// One data row validated: the row to write, or why it is skipped.
fn validate_row(
    record: &csv::StringRecord,
    columns: &Columns,
    width: usize,
    region: Option<shared::domain::PhoneRegion>,
) -> Result<ImportRow, String> {
    if record.len() != width {
        return Err(format!(
            "has {} fields, the header has {width}",
            record.len()
        ));
    }
    // A quote left open swallows the lines after it into one cell, rows and all: a cell whose
    // later lines hold a comma is that, not a name written over two lines.
    if record
        .iter()
        .any(|text| text.lines().skip(1).any(|later| later.contains(',')))
    {
        return Err(
            "has a quoted cell that runs over the following lines, commas and all: a \
                    quote is left open, and the rows after it were read into this one (close \
                    the quote and import again)"
                .to_owned(),
        );
    }
    let cell = |index: Option<usize>| {
        index
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let phone_raw = cell(Some(columns.phone)).ok_or("phone: is required")?;
    if phone_raw.chars().count() > 50 {
        return Err("phone: must be at most 50 characters".to_owned());
    }
    let phone = PhoneE164::parse_input(phone_raw, region).map_err(|e| format!("phone: {e}"))?;
    // A quoted cell may span lines; in a name or company the line breaks (and any run of
    // white space) become one space.
    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let name = cell(columns.name)
        .map(|text| ContactName::parse(&one_line(text)))
        .transpose()
        .map_err(|e| format!("name: {e}"))?;
    let email = cell(columns.email)
        .map(Email::parse)
        .transpose()
        .map_err(|e| format!("email: {e}"))?;
    let company = cell(columns.company)
        .map(|text| ContactCompany::parse(&one_line(text)))
        .transpose()
        .map_err(|e| format!("company: {e}"))?;
    let mut tags: Vec<Tag> = Vec::new();
    if let Some(raw) = cell(columns.tags) {
        for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let tag = Tag::parse(part).map_err(|e| format!("tags: `{part}` {e}"))?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if tags.len() > crate::contacts::MAX_TAGS_PER_REQUEST {
            return Err(format!(
                "tags: at most {} tags per contact",
                crate::contacts::MAX_TAGS_PER_REQUEST
            ));
        }
    }
    Ok(ImportRow {
        phone,
        name,
        email,
        company,
        tags,
    })
}

/// The parsed file: valid rows (phones unique) and skipped ones.
#[derive(Debug, Default)]
pub struct ParsedImport {
    pub rows: Vec<ImportRow>,
    pub skipped: Vec<SkippedRow>,
}

/// Parses and validates a CSV body. Errors (422, nothing to write) for a file that is not
/// UTF-8, not CSV, has a bad header or too many rows.
pub fn parse_import(
    body: &[u8],
    region: Option<shared::domain::PhoneRegion>,
) -> Result<ParsedImport, ApiError> {
    let mut rows = Vec::new();
    let skipped = parse_import_with(body, region, |batch| {
        rows.extend(batch);
        true
    })?;
    Ok(ParsedImport { rows, skipped })
}

/// [`parse_import`] handing the valid rows over batch by batch, in file order, as they are
/// validated (so they can be written while the rest is parsed); answers the skipped rows.
/// `on_batch` answers false to stop early. An error may come after batches were handed
/// over: write them in a transaction that an error rolls back.
pub fn parse_import_with(
    body: &[u8],
    region: Option<shared::domain::PhoneRegion>,
    mut on_batch: impl FnMut(Vec<ImportRow>) -> bool,
) -> Result<Vec<SkippedRow>, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| {
        refuse(
            "body",
            "must be UTF-8 CSV (with or without a byte-order mark)",
        )
    })?;
    if text.contains('\0') {
        return Err(refuse(
            "body",
            "must not contain NUL (U+0000): not a CSV file",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| refuse("header", format!("cannot be read: {e}")))?
        .clone();
    if header.is_empty() || header.iter().all(|h| h.trim().is_empty()) {
        return Err(refuse(
            "header",
            "is missing: the first line must name the columns",
        ));
    }
    let columns = columns(&header)?;
    let width = header.len();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut skipped = Vec::new();
    let mut first_row_of_phone: HashMap<String, u64> = HashMap::new();
    // Rows are read in batches (the reading is quick) and each batch is validated on every
    // core (libphonenumber per row is most of the parsing time), then merged in file order.
    let mut batch: Vec<csv::StringRecord> = Vec::new();
    let mut row: u64 = 0;
    loop {
        let mut filled = 0;
        while filled < VALIDATE_BATCH {
            if batch.len() == filled {
                batch.push(csv::StringRecord::new());
            }
            match reader.read_record(&mut batch[filled]) {
                Ok(false) => break,
                Ok(true) => {}
                Err(error) => {
                    // A malformed quote or the like: the rest of the file cannot be trusted.
                    return Err(refuse("body", format!("is not valid CSV: {error}")));
                }
            }
            filled += 1;
            if usize::try_from(row).unwrap_or(usize::MAX) + filled > MAX_IMPORT_ROWS {
                return Err(refuse(
                    "body",
                    format!("has more than {MAX_IMPORT_ROWS} rows: split the file"),
                ));
            }
        }
        let records = &batch[..filled];
        let validated = validate_rows(records, &columns, width, region, workers);
        let mut rows = Vec::with_capacity(validated.len());
        for (record, outcome) in records.iter().zip(validated) {
            row += 1;
            let line = record.position().map_or(0, csv::Position::line);
            match outcome {
                Ok(valid) => match first_row_of_phone.get(valid.phone.as_str()) {
                    Some(first) => skipped.push(SkippedRow {
                        row,
                        line,
                        reason: format!("phone: duplicate of row {first}"),
                    }),
                    None => {
                        first_row_of_phone.insert(valid.phone.as_str().to_owned(), row);
                        rows.push(valid);
                    }
                },
                Err(reason) => skipped.push(SkippedRow { row, line, reason }),
            }
        }
        if !rows.is_empty() && !on_batch(rows) {
            return Ok(skipped);
        }
        if filled < VALIDATE_BATCH {
            return Ok(skipped);
        }
    }
}

/// Rows read before a batch is validated.
const VALIDATE_BATCH: usize = 8192;

/// Validates records on up to `workers` threads, each taking a contiguous share; the
/// outcomes come back in the records' order.
fn validate_rows(
    records: &[csv::StringRecord],
    columns: &Columns,
    width: usize,
    region: Option<shared::domain::PhoneRegion>,
    workers: usize,
) -> Vec<Result<ImportRow, String>> {
    let validate = |share: &[csv::StringRecord]| -> Vec<Result<ImportRow, String>> {
        share
            .iter()
            .map(|record| validate_row(record, columns, width, region))
            .collect()
    };
    // Below a few hundred rows a thread costs more than it saves.
    let workers = workers.min(records.len() / 256).max(1);
    if workers == 1 {
        return validate(records);
    }
    let share = records.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(share)
            .skip(1)
            .map(|chunk| scope.spawn(move || validate(chunk)))
            .collect();
        let mut outcomes = validate(&records[..share]);
        for handle in handles {
            match handle.join() {
                Ok(more) => outcomes.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        outcomes
    })
}

/// Imports contacts from a CSV file: a header with `phone` (required) and any of `name`,
/// `email`, `company`, `tags` (separated by `;`), in any order. Bad rows are skipped and
/// named; the others are written in one transaction. Re-importing a file changes nothing.
#[utoipa::path(
    post, path = "/contacts/import", tag = "contacts",
    request_body(content = String, content_type = "text/csv",
        description = "UTF-8 CSV, with or without a byte-order mark; at most 10 MiB"),
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 200, body = ImportResult),
        (status = 422, description = "Not UTF-8 CSV, or a bad header: nothing was written", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn import_contacts(
    State(state): State<ApiState>,
    tenant: Tenant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ImportResult>, ApiError> {
    if !is_csv(&headers) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "text/csv",
        });
    }
    let started = std::time::Instant::now();
    let mut client = state.pool.get().await?;
    let region = contacts::default_region(&client, &tenant.user_id).await?;
    // The file is parsed on a blocking thread (validation takes every core a few hundred
    // milliseconds for a large file) and each batch of valid rows is written as soon as it
    // is validated, while the next is parsed. A 422 found later (bad CSV, too many rows)
    // drops the transaction: nothing is written.
    let (batches, mut validated) = tokio::sync::mpsc::channel::<Vec<ImportRow>>(2);
    let parser = tokio::task::spawn_blocking(move || {
        let skipped = parse_import_with(&body, region, |rows| batches.blocking_send(rows).is_ok());
        (skipped, started.elapsed().as_millis())
    });
    let tx = client.transaction().await?;
    contacts::begin_import(&tx, &tenant.user_id).await?;
    let mut counts = contacts::ImportCounts::default();
    while let Some(rows) = validated.recv().await {
        counts += contacts::import_batch(&tx, &tenant.user_id, &rows).await?;
    }
    let (skipped, parsed_ms) = parser
        .await
        .map_err(|error| ApiError::Internal(Box::new(error)))?;
    let skipped = skipped?;
    tx.commit().await?;
    tracing::info!(
        rows = counts.created + counts.updated + counts.unchanged + skipped.len() as u64,
        created = counts.created,
        updated = counts.updated,
        unchanged = counts.unchanged,
        skipped = skipped.len(),
        parse_ms = parsed_ms,
        duration_ms = started.elapsed().as_millis(),
        "contacts imported"
    );
    let skipped_count = u64::try_from(skipped.len()).unwrap_or(u64::MAX);
    let mut skipped = skipped;
    skipped.truncate(MAX_SKIPPED_LISTED);
    Ok(axum::Json(ImportResult {
        created: counts.created,
        updated: counts.updated,
        unchanged: counts.unchanged,
        skipped,
        skipped_count,
        tags_added: counts.tags_added,
    }))
}

/// A cell as exported: text a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first)
/// is prefixed with `'`. Phones are written as they are (E.164 starts with `+`).
fn safe_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

const EXPORT_HEADER: [&str; 13] = [
    "contact_id",
    "phone",
    "platform",
    "customer_id",
    "name",
    "email",
    "company",
    "tags",
    "source",
    "opted_out",
    "is_active",
    "created_at",
    "updated_at",
];

fn csv_chunk(rows: &[contacts::Contact], with_header: bool) -> Result<Bytes, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 120));
    if with_header {
        writer.write_record(EXPORT_HEADER)?;
    }
    for c in rows {
        let tags = c.tags.join(";");
        writer.write_record([
            c.contact_id.as_str(),
            c.phone.as_deref().unwrap_or(""),
            c.platform.map(|p| p.as_str()).unwrap_or(""),
            &safe_cell(c.customer_id.as_deref().unwrap_or("")),
            &safe_cell(c.name.as_deref().unwrap_or("")),
            &safe_cell(c.email.as_deref().unwrap_or("")),
            &safe_cell(c.company.as_deref().unwrap_or("")),
            &safe_cell(&tags),
            c.source.as_str(),
            if c.opted_out { "true" } else { "false" },
            if c.is_active { "true" } else { "false" },
            &c.created_at.to_rfc3339(),
            &c.updated_at.to_rfc3339(),
        ])?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| csv::Error::from(e.into_error()))
}

struct ExportState {
    pool: shared::db::Pool,
    user: UserId,
    filter: ContactFilter,
    before: Option<String>,
    first: bool,
    done: bool,
}

async fn next_chunk(
    mut state: ExportState,
) -> Option<(Result<Bytes, std::io::Error>, ExportState)> {
    if state.done {
        return None;
    }
    let page = PageRequest {
        before: state.before.clone(),
        fetch: EXPORT_PAGE,
    };
    let rows = async {
        let client = state.pool.get().await?;
        contacts::list(&client, &state.user, &state.filter, &page).await
    }
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => {
            // The status line is gone: all that is left is to cut the body short.
            tracing::error!(error = %error, "export stopped: database error");
            state.done = true;
            return Some((Err(std::io::Error::other("export failed")), state));
        }
    };
    state.done = i64::try_from(rows.len()).unwrap_or(0) < EXPORT_PAGE;
    state.before = rows.last().map(|c| c.contact_id.to_string());
    let chunk = csv_chunk(&rows, state.first).map_err(std::io::Error::other);
    state.first = false;
    Some((chunk, state))
}

/// Exports the contacts the filters match (the list's filters) as CSV, streamed page by
/// page (1,000 contacts per database read), newest first. Columns: contact_id, phone,
/// platform, customer_id, name, email, company, tags (`;`-separated), source, opted_out,
/// is_active, created_at, updated_at. Text a spreadsheet would run as a formula is
/// prefixed with `'`.
#[utoipa::path(
    get, path = "/contacts/export", tag = "contacts",
    params(ContactFilterParams),
    responses(
        BearerErrors, QueryErrors,
        (status = 200, body = String, content_type = "text/csv"),
    ),
)]
pub async fn export_contacts(
    State(state): State<ApiState>,
    tenant: Tenant,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let query = query::parse(uri.query().unwrap_or_default(), false)?;
    let stream = futures_util::stream::unfold(
        ExportState {
            pool: state.pool.clone(),
            user: tenant.user_id.clone(),
            filter: query.filter,
            before: None,
            first: true,
            done: false,
        },
        next_chunk,
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"contacts.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedImport, ApiError> {
        parse_import(
            text.as_bytes(),
            shared::domain::PhoneRegion::parse("US").ok(),
        )
    }

    #[test]
    fn quoted_commas_newlines_bom_and_any_column_order_are_read() {
        let text =
            "\u{FEFF}Tags,NAME,phone\n\"vip; Lead\",\"Doe, Jane\nthe second\",+1 415 555 2671\n";
        let parsed = parse(text).expect("valid");
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert_eq!(parsed.rows.len(), 1);
        let row = &parsed.rows[0];
        assert_eq!(row.phone.as_str(), "+14155552671");
        assert_eq!(
            row.name.as_ref().map(ContactName::as_str),
            Some("Doe, Jane the second")
        );
        let tags: Vec<&str> = row.tags.iter().map(Tag::as_str).collect();
        assert_eq!(tags, ["vip", "lead"]);
    }

    #[test]
    fn bad_rows_are_named_with_their_reason_and_the_rest_kept() {
        let text = "phone,email\n+14155552671,a@example.com\nnot a phone,\n+14155552672,nope\n(415) 555-2671,\n,x@example.com\n+14155552673\n";
        let parsed = parse(text).expect("valid file");
        assert_eq!(parsed.rows.len(), 1);
        let reasons: Vec<(u64, &str)> = parsed
            .skipped
            .iter()
            .map(|s| (s.row, s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (2, "phone: is not a phone number"),
                (3, "email: must be an email address like name@example.com"),
                (4, "phone: duplicate of row 1"),
                (5, "phone: is required"),
                (6, "has 1 fields, the header has 2"),
            ]
        );
    }

    #[test]
    fn a_bad_header_or_a_file_that_is_not_csv_is_refused_whole() {
        for (text, field) in [
            ("name,email\nAna,a@example.com\n", "header"),
            ("phone,colour\n+14155552671,red\n", "header"),
            ("phone,phone\n+14155552671,+14155552672\n", "header"),
            ("", "header"),
            ("{\"contacts\": []}", "header"),
        ] {
            let error = parse(text).map(|_| ()).expect_err(text);
            assert_eq!(error.status().as_u16(), 422, "{text}");
            assert_eq!(error.problem().errors[0].field, field, "{text}");
        }
        let error = parse_import(b"phone\n\xFF\xFE", None)
            .map(|_| ())
            .expect_err("binary");
        assert_eq!(error.problem().errors[0].field, "body");
    }
}
