//! `/contacts`: create, list, read, change, delete and erase contacts; their tags; opt-out
//! and opt-in; the tenant's default phone region.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    api::{
        ApiError, ApiState, Cursors, FieldErrors, Json, Page, PageParams, Problem, Query, Tenant,
        openapi::{
            PROBLEM_JSON, nullable,
            responses::{BearerErrors, JsonBodyErrors, ListErrors, PathErrors},
        },
    },
    db::contacts::{
        self, BulkTarget, Contact, ContactPatch, ContactView, CreateOutcome, NewContact,
        PatchOutcome,
    },
    domain::{
        ContactCompany, ContactId, ContactName, ContactSource, Email, LeadStatus, PhoneE164,
        PhoneParseError, PhoneRegion, Platform, Tag, UserId,
    },
};
use utoipa::{IntoParams, ToSchema};

use crate::query::{ContactFilterParams, ContactQuery, FilterBody, PageQueryParams};

/// The most tags one request may add or remove.
pub const MAX_TAGS_PER_REQUEST: usize = 100;
/// The most contact ids one bulk change may name.
pub const MAX_BULK_IDS: usize = 1000;

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactResponse {
    /// `ct_…`
    contact_id: String,
    /// E.164 (`+14155552671`); `null` for customers known only by a channel identity, and
    /// once erased. Campaigns only reach contacts with a phone.
    phone: Option<String>,
    /// The channel identity of a customer without a phone: the platform…
    platform: Option<Platform>,
    /// …and the customer's id there (Instagram-scoped id, webchat visitor id, WhatsApp
    /// business-scoped user id).
    customer_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    /// Normalised tags (lowercase), in the order they were added.
    tags: Vec<String>,
    source: ContactSource,
    /// The extraction that last synced this contact.
    extraction_id: Option<String>,
    conversation_id: Option<String>,
    /// `false` once deleted.
    is_active: bool,
    opted_out: bool,
    opted_out_at: Option<DateTime<Utc>>,
    last_contacted_at: Option<DateTime<Utc>>,
    total_messages_sent: i32,
    total_messages_received: i32,
    /// When its personal data was erased (`DELETE ?hard=true`).
    erased_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Contact> for ContactResponse {
    fn from(c: Contact) -> Self {
        Self {
            contact_id: c.contact_id.into(),
            phone: c.phone,
            platform: c.platform,
            customer_id: c.customer_id,
            name: c.name,
            email: c.email,
            company: c.company,
            tags: c.tags,
            source: c.source,
            extraction_id: c.extraction_id.map(|id| id.to_string()),
            conversation_id: c.conversation_id,
            is_active: c.is_active,
            opted_out: c.opted_out,
            opted_out_at: c.opted_out_at,
            last_contacted_at: c.last_contacted_at,
            total_messages_sent: c.total_messages_sent,
            total_messages_received: c.total_messages_received,
            erased_at: c.erased_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// The lead status of a contact's latest extraction.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadSummary {
    lead_status_tag: Option<LeadStatus>,
    /// 5 to 15.
    total_score: Option<i32>,
    extracted_at: Option<DateTime<Utc>>,
}

/// A contact with its latest lead status and score.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDetail {
    #[serde(flatten)]
    contact: ContactResponse,
    /// `null` until a conversation of the contact was scored.
    lead: Option<LeadSummary>,
}

impl From<ContactView> for ContactDetail {
    fn from(view: ContactView) -> Self {
        let lead = view.extracted_at.map(|extracted_at| LeadSummary {
            lead_status_tag: view.lead_status_tag,
            total_score: view.total_score,
            extracted_at: Some(extracted_at),
        });
        Self {
            contact: view.contact.into(),
            lead,
        }
    }
}

/// 409: the tenant already has a contact with this phone.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneTakenProblem {
    #[serde(flatten)]
    problem: Problem,
    /// The contact that has the phone.
    contact_id: String,
}

fn phone_taken(contact_id: &ContactId) -> Response {
    let problem = ApiError::Conflict(format!(
        "contact {contact_id} already has this phone number"
    ))
    .problem();
    let mut response = (
        StatusCode::CONFLICT,
        axum::Json(PhoneTakenProblem {
            problem,
            contact_id: contact_id.to_string(),
        }),
    )
        .into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(PROBLEM_JSON),
    );
    response
}

/// A contact to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    /// International (`+33 6 12 34 56 78`, `0033…`) or, with the tenant's default region
    /// set, national (`06 12 34 56 78`); stored as E.164.
    #[schema(min_length = 1, max_length = 50)]
    phone: String,
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    email: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    company: Option<String>,
    /// Trimmed, lowercased, 1 to 50 characters, no `;` or `,`.
    #[schema(max_items = 100)]
    #[serde(default)]
    tags: Vec<String>,
}

/// Changes to a contact. Absent fields stay as they are; `null` clears name, email or
/// company.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchContact {
    #[schema(min_length = 1, max_length = 50)]
    phone: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 255, nullable)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 3, max_length = 254, nullable)]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 255, nullable)]
    company: Option<Option<String>>,
    /// `true` restores a deleted contact.
    is_active: Option<bool>,
}

/// `DELETE /contacts/{id}` options.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Erase the contact's personal data (a privacy request) instead of deactivating it.
    hard: Option<bool>,
}

/// What a delete did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedContact {
    contact_id: String,
    /// `deactivated` (history kept, restorable with PATCH `is_active: true`) or `erased`.
    outcome: String,
    /// What was removed.
    erased: Vec<String>,
    /// What was kept, and why.
    kept: Vec<String>,
}

/// Tags to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTags {
    /// Trimmed, lowercased, 1 to 50 characters, no `;` or `,`.
    #[schema(min_items = 1, max_items = 100)]
    tags: Vec<String>,
}

/// A contact after a tag change, with the tags that were new to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaggedContact {
    #[serde(flatten)]
    contact: ContactResponse,
    /// Tags the contact did not have (one `TAG_ADDED` event each).
    added: Vec<String>,
}

/// A tag change on many contacts: `contact_ids` or `filter` (exactly one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkTags {
    /// At most 1,000 contacts (`ct_…`).
    #[schema(max_items = 1000)]
    contact_ids: Option<Vec<String>>,
    /// Every contact matching these filters (the list's, as JSON).
    filter: Option<FilterBody>,
    #[serde(default)]
    #[schema(max_items = 100)]
    add: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 100)]
    remove: Vec<String>,
}

/// What a bulk tag change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkTagsResult {
    /// Contacts the target matched.
    matched: u64,
    /// Contacts whose tags changed.
    updated: u64,
    /// `TAG_ADDED` events recorded (one per contact and tag it gained).
    tags_added: u64,
}

/// A tag with how many active contacts carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagCount {
    tag: String,
    contacts: i64,
}

/// The tenant's tags.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagList {
    /// Most used first.
    items: Vec<TagCount>,
}

/// The tenant's contact settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactSettings {
    /// ISO 3166-1 alpha-2 region (`FR`, `US`) that phone numbers without `+` are read in,
    /// in `POST /contacts`, `PATCH` and imports; `null`: only international numbers.
    #[schema(min_length = 2, max_length = 2, nullable)]
    default_phone_region: Option<String>,
}

pub(crate) fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(raw).ok_or_else(contact_not_found)
}

pub(crate) fn contact_not_found() -> ApiError {
    ApiError::NotFound("no such contact".to_owned())
}

/// The message of a refused phone, completing "phone ...".
pub(crate) fn phone_message(error: &PhoneParseError) -> String {
    error.to_string()
}

fn parse_phone(raw: &str, region: Option<PhoneRegion>) -> Result<PhoneE164, String> {
    if raw.chars().count() > 50 {
        return Err("must be at most 50 characters".to_owned());
    }
    PhoneE164::parse_input(raw, region).map_err(|e| phone_message(&e))
}

pub(crate) fn parse_tags(field: &str, raw: &[String], errors: &mut FieldErrors) -> Vec<Tag> {
    if raw.len() > MAX_TAGS_PER_REQUEST {
        errors.push(
            field,
            format!("must list at most {MAX_TAGS_PER_REQUEST} tags"),
        );
        return Vec::new();
    }
    let mut tags: Vec<Tag> = Vec::new();
    for (i, value) in raw.iter().enumerate() {
        if let Some(tag) = errors.check(&format!("{field}[{i}]"), Tag::parse(value)) {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    tags
}

async fn region_of(
    client: &shared::db::PooledClient,
    user: &UserId,
) -> Result<Option<PhoneRegion>, ApiError> {
    Ok(contacts::default_region(client, user).await?)
}

/// Creates a contact (`source` MANUAL); each tag records one `TAG_ADDED` event.
#[utoipa::path(
    post, path = "/contacts", tag = "contacts",
    request_body = CreateContact,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 201, body = ContactResponse),
        (status = 409, description = "The tenant has a contact with this phone; `contact_id` names it", body = PhoneTakenProblem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_contact(
    State(state): State<ApiState>,
    tenant: Tenant,
    Json(body): Json<CreateContact>,
) -> Result<Response, ApiError> {
    let mut client = state.pool.get().await?;
    let region = region_of(&client, &tenant.user_id).await?;
    let mut errors = FieldErrors::default();
    let phone = errors.check("phone", parse_phone(&body.phone, region));
    let name = body
        .name
        .as_deref()
        .and_then(|raw| errors.check("name", ContactName::parse(raw)));
    let email = body
        .email
        .as_deref()
        .and_then(|raw| errors.check("email", Email::parse(raw)));
    let company = body
        .company
        .as_deref()
        .and_then(|raw| errors.check("company", ContactCompany::parse(raw)));
    let tags = parse_tags("tags", &body.tags, &mut errors);
    errors.into_result()?;
    let Some(phone) = phone else {
        return Err(ApiError::invalid("phone", "is required"));
    };
    let new = NewContact {
        phone,
        name,
        email,
        company,
        tags,
    };
    let tx = client.transaction().await?;
    match contacts::create(&tx, &tenant.user_id, &new).await? {
        CreateOutcome::Created(contact) => {
            tx.commit().await?;
            tracing::info!(contact.id = %contact.contact_id, "contact created");
            Ok((
                StatusCode::CREATED,
                axum::Json(ContactResponse::from(contact)),
            )
                .into_response())
        }
        CreateOutcome::PhoneTaken(existing) => Ok(phone_taken(&existing)),
    }
}

/// The tenant's contacts, newest first, filtered.
#[utoipa::path(
    get, path = "/contacts", tag = "contacts",
    params(ContactFilterParams, PageQueryParams),
    responses(
        BearerErrors, ListErrors,
        (status = 200, body = Page<ContactResponse>),
    ),
)]
pub async fn list_contacts(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: ContactQuery,
) -> Result<axum::Json<Page<ContactResponse>>, ApiError> {
    let cursors = Cursors::new(&state.sealing_key, "contacts");
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request(&cursors)?;
    let client = state.pool.get().await?;
    let rows = contacts::list(&client, &tenant.user_id, &query.filter, &page).await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        &cursors,
        |c| c.contact_id.to_string(),
        Into::into,
    )))
}

/// One contact, with the lead status and score of its latest extraction.
#[utoipa::path(
    get, path = "/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "`ct_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ContactDetail),
    ),
)]
pub async fn get_contact(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<ContactDetail>, ApiError> {
    let id = contact_id(&id)?;
    let client = state.pool.get().await?;
    let view = contacts::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(contact_not_found)?;
    Ok(axum::Json(view.into()))
}

/// Changes a contact's phone, name, email or company, or restores a deleted one. An erased
/// contact cannot be changed (404).
#[utoipa::path(
    patch, path = "/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "`ct_…`")),
    request_body = PatchContact,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = ContactResponse),
        (status = 409, description = "Another contact has this phone; `contact_id` names it", body = PhoneTakenProblem, content_type = "application/problem+json"),
    ),
)]
pub async fn patch_contact(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<PatchContact>,
) -> Result<Response, ApiError> {
    let id = contact_id(&id)?;
    let client = state.pool.get().await?;
    let mut errors = FieldErrors::default();
    let phone = match &body.phone {
        Some(raw) => {
            let region = region_of(&client, &tenant.user_id).await?;
            errors.check("phone", parse_phone(raw, region))
        }
        None => None,
    };
    fn optional<T>(
        errors: &mut FieldErrors,
        field: &str,
        value: &Option<Option<String>>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match value {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => errors.check(field, parse(raw)).map(Some),
        }
    }
    let name = optional(&mut errors, "name", &body.name, ContactName::parse);
    let email = optional(&mut errors, "email", &body.email, Email::parse);
    let company = optional(&mut errors, "company", &body.company, ContactCompany::parse);
    errors.into_result()?;
    let patch = ContactPatch {
        phone,
        name,
        email,
        company,
        is_active: body.is_active,
    };
    match contacts::patch(&client, &tenant.user_id, &id, &patch).await? {
        PatchOutcome::Updated(contact) => {
            Ok(axum::Json(ContactResponse::from(contact)).into_response())
        }
        PatchOutcome::NotFound => Err(contact_not_found()),
        PatchOutcome::PhoneTaken(other) => Ok(phone_taken(&other)),
    }
}

/// Deletes a contact: deactivates it (history kept), or with `?hard=true` erases its
/// personal data for a privacy request and says what it kept.
#[utoipa::path(
    delete, path = "/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "`ct_…`"), DeleteParams),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = DeletedContact),
    ),
)]
pub async fn delete_contact(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<axum::Json<DeletedContact>, ApiError> {
    let id = contact_id(&id)?;
    let mut client = state.pool.get().await?;
    if params.hard.unwrap_or(false) {
        let tx = client.transaction().await?;
        let erasure = contacts::erase(&tx, &tenant.user_id, &id)
            .await?
            .ok_or_else(contact_not_found)?;
        tx.commit().await?;
        tracing::info!(contact.id = %id, "contact erased");
        return Ok(axum::Json(DeletedContact {
            contact_id: id.into(),
            outcome: "erased".to_owned(),
            erased: vec![
                "phone".to_owned(),
                "channel identity (platform, customer_id)".to_owned(),
                "name".to_owned(),
                "email".to_owned(),
                "company".to_owned(),
                "tags".to_owned(),
                format!(
                    "name, email, company, summary, reasoning and requirements of the \
                     customer's {} extraction(s)",
                    erasure.extractions_erased
                ),
                format!(
                    "the customer's name, email, phone, participants and notes of {} \
                     meeting(s)",
                    erasure.meetings_erased
                ),
            ],
            kept: vec![
                "the contact id, its source, counters, opt-out state and times (so campaign \
                 history that references it stays whole)"
                    .to_owned(),
                "an opt-out, as a hash of the phone or channel identity: a customer who said \
                 STOP is not messaged again when re-added"
                    .to_owned(),
                "the extractions' customer phone and scores, and the meetings' times (the \
                 conversation's key, kept with the conversation)"
                    .to_owned(),
                "the customer's conversations and messages (no API erases them yet: an operator \
                 deletes them in the database)"
                    .to_owned(),
                "its domain events (ids and tags, no personal data)".to_owned(),
            ],
        }));
    }
    let patch = ContactPatch {
        is_active: Some(false),
        ..ContactPatch::default()
    };
    match contacts::patch(&client, &tenant.user_id, &id, &patch).await? {
        PatchOutcome::Updated(_) => Ok(axum::Json(DeletedContact {
            contact_id: id.into(),
            outcome: "deactivated".to_owned(),
            erased: vec![],
            kept: vec!["everything: the contact is inactive and restorable".to_owned()],
        })),
        PatchOutcome::NotFound | PatchOutcome::PhoneTaken(_) => Err(contact_not_found()),
    }
}

/// Adds tags to a contact; each tag new to it records one `TAG_ADDED` event.
#[utoipa::path(
    post, path = "/contacts/{id}/tags", tag = "contacts",
    params(("id" = String, Path, description = "`ct_…`")),
    request_body = AddTags,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = TaggedContact),
    ),
)]
pub async fn add_tags(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<AddTags>,
) -> Result<axum::Json<TaggedContact>, ApiError> {
    let id = contact_id(&id)?;
    let mut errors = FieldErrors::default();
    if body.tags.is_empty() {
        errors.push("tags", "must list at least one tag");
    }
    let tags = parse_tags("tags", &body.tags, &mut errors);
    errors.into_result()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (contact, added) = contacts::add_tags(&tx, &tenant.user_id, &id, &tags)
        .await?
        .ok_or_else(contact_not_found)?;
    tx.commit().await?;
    Ok(axum::Json(TaggedContact {
        contact: contact.into(),
        added,
    }))
}

/// Removes a tag from a contact (removing a tag it does not have changes nothing).
#[utoipa::path(
    delete, path = "/contacts/{id}/tags/{tag}", tag = "contacts",
    params(
        ("id" = String, Path, description = "`ct_…`"),
        ("tag" = String, Path, description = "The tag (normalised like any tag)"),
    ),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ContactResponse),
    ),
)]
pub async fn remove_tag(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path((id, tag)): Path<(String, String)>,
) -> Result<axum::Json<ContactResponse>, ApiError> {
    let id = contact_id(&id)?;
    let tag = Tag::parse(&tag).map_err(|message| ApiError::invalid("tag", message))?;
    let client = state.pool.get().await?;
    let contact = contacts::remove_tag(&client, &tenant.user_id, &id, &tag)
        .await?
        .ok_or_else(contact_not_found)?;
    Ok(axum::Json(contact.into()))
}

/// Adds and removes tags on many contacts at once, chosen by id or by the list's filters.
/// A tag in both `add` and `remove` is a 422 naming `remove` (which one was meant?).
#[utoipa::path(
    post, path = "/contacts/tags", tag = "contacts",
    request_body = BulkTags,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 200, body = BulkTagsResult),
    ),
)]
pub async fn bulk_tags(
    State(state): State<ApiState>,
    tenant: Tenant,
    Json(body): Json<BulkTags>,
) -> Result<axum::Json<BulkTagsResult>, ApiError> {
    let mut errors = FieldErrors::default();
    let target = match (body.contact_ids, body.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                errors.push(
                    "contact_ids",
                    format!("must list 1 to {MAX_BULK_IDS} contact ids"),
                );
            }
            // Malformed ids cannot be the tenant's: they match nothing, like others' ids.
            Some(BulkTarget::Ids(
                ids.iter().filter_map(|raw| ContactId::parse(raw)).collect(),
            ))
        }
        (None, Some(filter)) => Some(BulkTarget::Filter(
            filter.into_filter("filter", &mut errors),
        )),
        _ => {
            errors.push(
                "contact_ids",
                "give exactly one of `contact_ids` and `filter`",
            );
            None
        }
    };
    let add = parse_tags("add", &body.add, &mut errors);
    let remove = parse_tags("remove", &body.remove, &mut errors);
    if add.is_empty() && remove.is_empty() {
        errors.push("add", "give at least one tag to add or remove");
    }
    if let Some(both) = remove.iter().find(|tag| add.contains(tag)) {
        errors.push(
            "remove",
            format!("`{both}` is also in `add`: a tag is either added or removed"),
        );
    }
    errors.into_result()?;
    let Some(target) = target else {
        return Err(ApiError::invalid("contact_ids", "is required"));
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let outcome = contacts::bulk_tags(&tx, &tenant.user_id, &target, &add, &remove).await?;
    tx.commit().await?;
    tracing::info!(
        matched = outcome.matched,
        updated = outcome.updated,
        "bulk tag change"
    );
    Ok(axum::Json(BulkTagsResult {
        matched: outcome.matched,
        updated: outcome.updated,
        tags_added: outcome.tags_added,
    }))
}

/// The tenant's tags on active contacts, with counts.
#[utoipa::path(
    get, path = "/tags", tag = "contacts",
    responses(
        BearerErrors,
        (status = 200, body = TagList),
    ),
)]
pub async fn list_tags(
    State(state): State<ApiState>,
    tenant: Tenant,
) -> Result<axum::Json<TagList>, ApiError> {
    let client = state.pool.get().await?;
    let items = contacts::tag_counts(&client, &tenant.user_id)
        .await?
        .into_iter()
        .map(|(tag, contacts)| TagCount { tag, contacts })
        .collect();
    Ok(axum::Json(TagList { items }))
}

async fn set_opted_out(
    state: &ApiState,
    tenant: &Tenant,
    id: &str,
    opted_out: bool,
) -> Result<axum::Json<ContactResponse>, ApiError> {
    let id = contact_id(id)?;
    let client = state.pool.get().await?;
    let contact = contacts::set_opted_out(&client, &tenant.user_id, &id, opted_out)
        .await?
        .ok_or_else(contact_not_found)?;
    tracing::info!(contact.id = %id, opted_out, "contact opt-out changed");
    Ok(axum::Json(contact.into()))
}

/// Opts a contact out of messages: the state the STOP keyword sets (`opted_out_at` is when
/// it first opted out).
#[utoipa::path(
    post, path = "/contacts/{id}/opt-out", tag = "contacts",
    params(("id" = String, Path, description = "`ct_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ContactResponse),
    ),
)]
pub async fn opt_out(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<ContactResponse>, ApiError> {
    set_opted_out(&state, &tenant, &id, true).await
}

/// Opts a contact back in: the state the START keyword sets.
#[utoipa::path(
    post, path = "/contacts/{id}/opt-in", tag = "contacts",
    params(("id" = String, Path, description = "`ct_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ContactResponse),
    ),
)]
pub async fn opt_in(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<ContactResponse>, ApiError> {
    set_opted_out(&state, &tenant, &id, false).await
}

/// The tenant's contact settings.
#[utoipa::path(
    get, path = "/contacts/settings", tag = "contacts",
    responses(
        BearerErrors,
        (status = 200, body = ContactSettings),
    ),
)]
pub async fn get_settings(
    State(state): State<ApiState>,
    tenant: Tenant,
) -> Result<axum::Json<ContactSettings>, ApiError> {
    let client = state.pool.get().await?;
    let region = contacts::default_region(&client, &tenant.user_id).await?;
    Ok(axum::Json(ContactSettings {
        default_phone_region: region.map(|r| r.as_str().to_owned()),
    }))
}

/// Sets the default phone region (`null` clears it).
#[utoipa::path(
    put, path = "/contacts/settings", tag = "contacts",
    request_body = ContactSettings,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 200, body = ContactSettings),
    ),
)]
pub async fn put_settings(
    State(state): State<ApiState>,
    tenant: Tenant,
    Json(body): Json<ContactSettings>,
) -> Result<axum::Json<ContactSettings>, ApiError> {
    let region = body
        .default_phone_region
        .as_deref()
        .map(PhoneRegion::parse)
        .transpose()
        .map_err(|message| ApiError::invalid("default_phone_region", message))?;
    let client = state.pool.get().await?;
    contacts::set_default_region(&client, &tenant.user_id, region).await?;
    Ok(axum::Json(ContactSettings {
        default_phone_region: region.map(|r| r.as_str().to_owned()),
    }))
}
