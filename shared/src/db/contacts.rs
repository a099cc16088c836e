//! `contacts`: the tenant's contact book. Written by the conversation worker (the STOP and
//! START keywords, message counters), by extractions ([`sync_from_extraction`]), by people
//! through the contacts API and by CSV imports.
//!
//! A contact is identified by its phone, or by its channel identity for customers without
//! one ([`CustomerIdentity`]); both are unique per tenant.
//!
//! **Invariant:** what a person entered is never overwritten by an extraction: an
//! extraction fills `name`, `email` and `company` only where they are empty.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DbError, GenericClient, enum_column, optional_enum_column};
use crate::domain::{
    ContactCompany, ContactId, ContactName, ContactSource, ConversationId, CustomerIdentity, Email,
    Platform, UserId,
};

/// A contact as stored.
#[derive(Debug, Clone)]
pub struct Contact {
    pub contact_id: ContactId,
    /// E.164; `None` for customers known only by a channel identity, and once erased.
    pub phone: Option<String>,
    /// The channel identity, for customers without a phone.
    pub platform: Option<Platform>,
    pub customer_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub tags: Vec<String>,
    pub source: ContactSource,
    pub extraction_id: Option<Uuid>,
    pub conversation_id: Option<String>,
    pub is_active: bool,
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub last_contacted_at: Option<DateTime<Utc>>,
    pub total_messages_sent: i32,
    pub total_messages_received: i32,
    pub erased_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const CONTACT_COLUMNS: &str =
    "contact_id, phone, platform, customer_id, name, email, company, tags,
    source, extraction_id, conversation_id, is_active, opted_out, opted_out_at, last_contacted_at,
    total_messages_sent, total_messages_received, erased_at, created_at, updated_at";

impl Contact {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Result<Self, DbError> {
        Ok(Self {
            contact_id: ContactId::from_trusted(row.try_get("contact_id")?),
            phone: row.try_get("phone")?,
            platform: optional_enum_column(row, "platform")?,
            customer_id: row.try_get("customer_id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            company: row.try_get("company")?,
            tags: row.try_get("tags")?,
            source: enum_column(row, "source")?,
            extraction_id: row.try_get("extraction_id")?,
            conversation_id: row.try_get("conversation_id")?,
            is_active: row.try_get("is_active")?,
            opted_out: row.try_get("opted_out")?,
            opted_out_at: row.try_get("opted_out_at")?,
            last_contacted_at: row.try_get("last_contacted_at")?,
            total_messages_sent: row.try_get("total_messages_sent")?,
            total_messages_received: row.try_get("total_messages_received")?,
            erased_at: row.try_get("erased_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The `WHERE` condition selecting a customer's contact, with its parameters numbered from
/// `$first`: the unique `(user_id, phone)` or `(user_id, platform, customer_id)`.
fn identity_condition(identity: &CustomerIdentity, first: usize) -> String {
    match identity {
        CustomerIdentity::Phone(_) => format!("phone = ${first}"),
        CustomerIdentity::Channel { .. } => {
            format!("platform = ${first} AND customer_id = ${}", first + 1)
        }
    }
}

/// The values of [`identity_condition`]'s parameters.
fn identity_values(identity: &CustomerIdentity) -> Vec<&str> {
    match identity {
        CustomerIdentity::Phone(phone) => vec![phone.as_str()],
        CustomerIdentity::Channel {
            platform,
            customer_id,
        } => vec![platform.as_str(), customer_id.as_str()],
    }
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// `leading` followed by an identity's values.
fn with_identity<'a>(mut leading: Vec<Param<'a>>, values: &'a [&'a str]) -> Vec<Param<'a>> {
    leading.extend(values.iter().map(|value| value as Param<'a>));
    leading
}

/// The columns `(phone, platform, customer_id)` of a new contact with this identity.
fn identity_columns(identity: &CustomerIdentity) -> (Option<&str>, Option<&str>, Option<&str>) {
    match identity {
        CustomerIdentity::Phone(phone) => (Some(phone.as_str()), None, None),
        CustomerIdentity::Channel {
            platform,
            customer_id,
        } => (None, Some(platform.as_str()), Some(customer_id.as_str())),
    }
}

/// The conflict target of an upsert by this identity.
fn identity_conflict_target(identity: &CustomerIdentity) -> &'static str {
    match identity {
        CustomerIdentity::Phone(_) => "(user_id, phone)",
        CustomerIdentity::Channel { .. } => "(user_id, platform, customer_id)",
    }
}

/// The customer key of an identity, as `conversations.customer_phone` holds it.
fn customer_key(identity: &CustomerIdentity) -> &str {
    match identity {
        CustomerIdentity::Phone(phone) => phone.as_str(),
        CustomerIdentity::Channel { customer_id, .. } => customer_id,
    }
}

/// What an extraction learned about the customer; each field already validated.
#[derive(Debug, Clone, Default)]
pub struct ExtractedContact {
    pub name: Option<ContactName>,
    pub email: Option<Email>,
    pub company: Option<ContactCompany>,
}

/// Finds or creates the tenant's contact for a customer, in the caller's transaction, and
/// returns its id. A contact it creates starts with `source` and the customer's inbound
/// messages counted so far (from the tenant's conversations with this customer key).
/// `fill` sets name, email and company only where they are empty; `link` sets
/// `extraction_id` and `conversation_id` when given.
async fn upsert_for_customer(
    client: &impl GenericClient,
    user: &UserId,
    identity: &CustomerIdentity,
    fill: &ExtractedContact,
    source: ContactSource,
    extraction_id: Option<Uuid>,
    conversation_id: Option<&ConversationId>,
) -> Result<ContactId, DbError> {
    let new_id = ContactId::generate();
    let (phone, platform, customer_id) = identity_columns(identity);
    let sql = format!(
        "INSERT INTO contacts (contact_id, user_id, phone, platform, customer_id, name, email, company,
                               source, extraction_id, conversation_id, total_messages_received)
         VALUES ($1, $2::text, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 (SELECT count(*) FROM messages m
                  JOIN conversations c ON c.conversation_id = m.conversation_id
                  JOIN agents a ON a.agent_id = c.agent_id
                  WHERE a.user_id = $2::text AND c.customer_phone = $12::text AND m.sender = 'user'))
         ON CONFLICT {target} DO UPDATE SET
             name = COALESCE(contacts.name, EXCLUDED.name),
             email = COALESCE(contacts.email, EXCLUDED.email),
             company = COALESCE(contacts.company, EXCLUDED.company),
             extraction_id = COALESCE(EXCLUDED.extraction_id, contacts.extraction_id),
             conversation_id = COALESCE(EXCLUDED.conversation_id, contacts.conversation_id)
         RETURNING contact_id",
        target = identity_conflict_target(identity),
    );
    let row = client
        .query_one(
            &sql,
            &[
                &new_id.as_str(),
                &user.as_str(),
                &phone,
                &platform,
                &customer_id,
                &fill.name.as_ref().map(ContactName::as_str),
                &fill.email.as_ref().map(Email::as_str),
                &fill.company.as_ref().map(ContactCompany::as_str),
                &source.as_str(),
                &extraction_id,
                &conversation_id.map(ConversationId::as_str),
                &customer_key(identity),
            ],
        )
        .await?;
    Ok(ContactId::from_trusted(row.try_get("contact_id")?))
}

/// Auto-sync: upserts the tenant's contact for the customer an extraction is about, in the
/// extraction's transaction. Name, email and company are filled only where the contact has
/// none (never overwriting what a person, an import or an earlier extraction entered);
/// `extraction_id` and `conversation_id` always point at the latest extraction; a contact
/// it creates has `source` EXTRACTION. Returns the contact's id, for events.
pub async fn sync_from_extraction(
    client: &impl GenericClient,
    user: &UserId,
    customer: &CustomerIdentity,
    extracted: &ExtractedContact,
    extraction_id: Uuid,
    conversation_id: &ConversationId,
) -> Result<ContactId, DbError> {
    upsert_for_customer(
        client,
        user,
        customer,
        extracted,
        ContactSource::Extraction,
        Some(extraction_id),
        Some(conversation_id),
    )
    .await
}

/// The id of the tenant's contact for a customer, if there is one.
pub async fn find_for_customer(
    client: &impl GenericClient,
    user: &UserId,
    customer: &CustomerIdentity,
) -> Result<Option<ContactId>, DbError> {
    let sql = format!(
        "SELECT contact_id FROM contacts WHERE user_id = $1 AND {}",
        identity_condition(customer, 2)
    );
    let user_id = user.as_str();
    let values = identity_values(customer);
    let params = with_identity(vec![&user_id], &values);
    let row = client.query_opt(&sql, &params).await?;
    row.map(|row| Ok(ContactId::from_trusted(row.try_get("contact_id")?)))
        .transpose()
}

/// The opt-out transition, the one code path for the STOP/START keywords and the API's
/// `/opt-out` and `/opt-in`: `opted_out_at` is when the contact opted out (kept when it was
/// already opted out), cleared by an opt-in. Returns the contact, or `None` when the tenant
/// has no such contact.
pub async fn set_opted_out(
    client: &impl GenericClient,
    user: &UserId,
    contact_id: &ContactId,
    opted_out: bool,
) -> Result<Option<Contact>, DbError> {
    let sql = format!(
        "UPDATE contacts SET
             opted_out = $3,
             opted_out_at = CASE WHEN NOT $3 THEN NULL
                                 WHEN opted_out THEN COALESCE(opted_out_at, CURRENT_TIMESTAMP)
                                 ELSE CURRENT_TIMESTAMP END
         WHERE user_id = $1 AND contact_id = $2 AND erased_at IS NULL
         RETURNING {CONTACT_COLUMNS}"
    );
    let row = client
        .query_opt(&sql, &[&user.as_str(), &contact_id.as_str(), &opted_out])
        .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

/// The STOP / START keywords: opts a customer out of (or back into) messages through
/// [`set_opted_out`], creating the contact first when needed (with the customer's profile
/// name and the conversation, `source` EXTRACTION as the reference's auto-created contacts).
/// Run it in a transaction: the creation and the transition are one change.
pub async fn set_opt_out_for_customer(
    client: &impl GenericClient,
    user: &UserId,
    customer: &CustomerIdentity,
    profile_name: Option<&str>,
    opted_out: bool,
    conversation_id: &ConversationId,
) -> Result<ContactId, DbError> {
    let fill = ExtractedContact {
        name: profile_name.and_then(|name| ContactName::parse(name).ok()),
        ..ExtractedContact::default()
    };
    let contact_id = upsert_for_customer(
        client,
        user,
        customer,
        &fill,
        ContactSource::Extraction,
        None,
        Some(conversation_id),
    )
    .await?;
    set_opted_out(client, user, &contact_id, opted_out).await?;
    Ok(contact_id)
}

/// Whether the customer opted out of the tenant's messages: its contact is opted out, or
/// the identity is suppressed (`opt_out_suppressions`, V15: an opt-out outlives the contact
/// row that carried it, through an erasure or a phone edit). No contact and no suppression:
/// no.
pub async fn is_opted_out(
    client: &impl GenericClient,
    user: &UserId,
    customer: &CustomerIdentity,
) -> Result<bool, DbError> {
    let (phone, platform, customer_id) = identity_columns(customer);
    let row = client
        .query_one(
            "SELECT EXISTS (
                 SELECT 1 FROM opt_out_suppressions
                  WHERE user_id = $1
                    AND customer_hash = ANY (contact_identity_hashes($2::text, $3::text, $4::text)))",
            &[&user.as_str(), &phone, &platform, &customer_id],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Counts `count` inbound messages stored for a customer of the agent's tenant, and fills
/// the contact's empty name with the customer's profile name. No contact: nothing.
pub async fn count_received(
    client: &impl GenericClient,
    user: &UserId,
    customer: &CustomerIdentity,
    count: i32,
    profile_name: Option<&str>,
) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE contacts SET total_messages_received = total_messages_received + $2,
             name = COALESCE(name, $3)
         WHERE user_id = $1 AND {}",
        identity_condition(customer, 4)
    );
    let values = identity_values(customer);
    let user = user.as_str();
    let params = with_identity(vec![&user, &count, &profile_name], &values);
    client.execute(&sql, &params).await?;
    Ok(())
}

/// Counts messages sent to the tenants' contacts with these identities (a customer with no
/// contact: nothing): `total_messages_sent` and `last_contacted_at`, in at most two
/// statements (phone identities, channel identities). A contact sent two counts two.
pub async fn count_sent_many(
    client: &impl GenericClient,
    sent: &[(&UserId, &CustomerIdentity)],
) -> Result<(), DbError> {
    let (mut phone_users, mut phones) = (Vec::new(), Vec::new());
    let (mut channel_users, mut platforms, mut customers) = (Vec::new(), Vec::new(), Vec::new());
    for (user, identity) in sent {
        match identity {
            CustomerIdentity::Phone(phone) => {
                phone_users.push(user.as_str());
                phones.push(phone.as_str());
            }
            CustomerIdentity::Channel {
                platform,
                customer_id,
            } => {
                channel_users.push(user.as_str());
                platforms.push(platform.as_str());
                customers.push(customer_id.as_str());
            }
        }
    }
    if !phones.is_empty() {
        super::execute_cached(
            client,
            "UPDATE contacts ct SET total_messages_sent = ct.total_messages_sent + u.n,
                     last_contacted_at = CURRENT_TIMESTAMP
                 FROM (SELECT uid, phone, count(*)::int AS n
                       FROM unnest($1::text[], $2::text[]) AS x(uid, phone)
                       GROUP BY uid, phone) u
                 WHERE ct.user_id = u.uid AND ct.phone = u.phone",
            &[&phone_users, &phones],
        )
        .await?;
    }
    if !customers.is_empty() {
        super::execute_cached(
            client,
            "UPDATE contacts ct SET total_messages_sent = ct.total_messages_sent + u.n,
                     last_contacted_at = CURRENT_TIMESTAMP
                 FROM (SELECT uid, platform, cid, count(*)::int AS n
                       FROM unnest($1::text[], $2::text[], $3::text[]) AS x(uid, platform, cid)
                       GROUP BY uid, platform, cid) u
                 WHERE ct.user_id = u.uid AND ct.platform = u.platform AND ct.customer_id = u.cid",
            &[&channel_users, &platforms, &customers],
        )
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The contacts API.
// ---------------------------------------------------------------------------------------

/// A contact with the lead status and score of its latest extraction (the one auto-sync
/// linked last).
#[derive(Debug, Clone)]
pub struct ContactView {
    pub contact: Contact,
    pub lead_status_tag: Option<crate::domain::LeadStatus>,
    pub total_score: Option<i32>,
    pub extracted_at: Option<DateTime<Utc>>,
}

/// A validated contact a person creates.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub phone: crate::domain::PhoneE164,
    pub name: Option<ContactName>,
    pub email: Option<Email>,
    pub company: Option<ContactCompany>,
    pub tags: Vec<crate::domain::Tag>,
}

/// The outcome of creating a contact.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per request, moved once"
)]
pub enum CreateOutcome {
    /// Created; with the `TAG_ADDED` events of its tags recorded.
    Created(Contact),
    /// The tenant already has a contact with this phone.
    PhoneTaken(ContactId),
}

/// Creates a contact (`source` MANUAL) and records `TAG_ADDED` for each of its tags, in
/// the caller's transaction.
pub async fn create(
    tx: &super::Transaction<'_>,
    user: &UserId,
    new: &NewContact,
) -> Result<CreateOutcome, DbError> {
    let contact_id = ContactId::generate();
    let tags: Vec<&str> = new.tags.iter().map(crate::domain::Tag::as_str).collect();
    let sql = format!(
        "INSERT INTO contacts (contact_id, user_id, phone, name, email, company, tags, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'MANUAL')
         ON CONFLICT (user_id, phone) DO NOTHING
         RETURNING {CONTACT_COLUMNS}"
    );
    let row = tx
        .query_opt(
            &sql,
            &[
                &contact_id.as_str(),
                &user.as_str(),
                &new.phone.as_str(),
                &new.name.as_ref().map(ContactName::as_str),
                &new.email.as_ref().map(Email::as_str),
                &new.company.as_ref().map(ContactCompany::as_str),
                &tags,
            ],
        )
        .await?;
    let Some(row) = row else {
        let existing =
            find_for_customer(tx, user, &CustomerIdentity::Phone(new.phone.clone())).await?;
        return match existing {
            Some(id) => Ok(CreateOutcome::PhoneTaken(id)),
            // Deleted between the insert and the read: report it as the conflict it was.
            None => Err(DbError::UniqueViolation {
                constraint: "contacts_user_phone_key".to_owned(),
            }),
        };
    };
    let contact = Contact::from_row(&row)?;
    let added: Vec<(ContactId, String)> = contact
        .tags
        .iter()
        .map(|tag| (contact.contact_id.clone(), tag.clone()))
        .collect();
    super::events::record_tags_added(tx, user, &added).await?;
    Ok(CreateOutcome::Created(contact))
}

/// One contact of the tenant, with its latest lead status and score.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    contact_id: &ContactId,
) -> Result<Option<ContactView>, DbError> {
    let sql = format!(
        "SELECT {columns}, e.lead_status_tag, e.total_score, e.extracted_at
         FROM contacts c
         LEFT JOIN extractions e ON e.extraction_id = c.extraction_id AND e.user_id = c.user_id
         WHERE c.user_id = $1 AND c.contact_id = $2",
        columns = prefixed_columns("c")
    );
    let row = client
        .query_opt(&sql, &[&user.as_str(), &contact_id.as_str()])
        .await?;
    row.map(|row| {
        Ok(ContactView {
            contact: Contact::from_row(&row)?,
            lead_status_tag: optional_enum_column(&row, "lead_status_tag")?,
            total_score: row.try_get("total_score")?,
            extracted_at: row.try_get("extracted_at")?,
        })
    })
    .transpose()
}

fn prefixed_columns(alias: &str) -> String {
    CONTACT_COLUMNS
        .split(',')
        .map(|column| format!("{alias}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The filters of the contact list, the export and the bulk tag change. Tags are
/// normalised; an empty list is no filter.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Every one of these tags (`tag`, repeatable).
    pub all_tags: Vec<String>,
    /// At least one of these tags (`any_tag`, repeatable).
    pub any_tags: Vec<String>,
    /// None of these tags (`exclude_tag`, repeatable).
    pub exclude_tags: Vec<String>,
    /// Name or email containing it (case-insensitive), or a phone starting with its digits.
    pub search: Option<String>,
    pub source: Option<ContactSource>,
    pub opted_out: Option<bool>,
    /// `None`: active contacts only.
    pub is_active: Option<bool>,
}

type BoxedParam = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl ContactFilter {
    /// The `WHERE` conditions (after `user_id = $1`) and their parameters, numbered from
    /// `$2`. Only the filters given appear, so the planner sees the query it must run (the
    /// tag filters as `@>`, `&&` on the GIN index).
    fn conditions(&self, params: &mut Vec<BoxedParam>) -> String {
        let mut sql = String::new();
        let mut push = |sql: &mut String, condition: &str, param: BoxedParam| {
            params.push(param);
            sql.push_str(&condition.replace('?', &format!("${}", params.len() + 1)));
        };
        if !self.all_tags.is_empty() {
            push(
                &mut sql,
                " AND tags @> ?::text[]",
                Box::new(self.all_tags.clone()),
            );
        }
        if !self.any_tags.is_empty() {
            push(
                &mut sql,
                " AND tags && ?::text[]",
                Box::new(self.any_tags.clone()),
            );
        }
        if !self.exclude_tags.is_empty() {
            push(
                &mut sql,
                " AND NOT (tags && ?::text[])",
                Box::new(self.exclude_tags.clone()),
            );
        }
        if let Some(search) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let contains = format!("%{}%", like_escape(search));
            push(&mut sql, " AND (name ILIKE ?", Box::new(contains.clone()));
            push(&mut sql, " OR email ILIKE ?", Box::new(contains));
            let digits: String = search.chars().filter(char::is_ascii_digit).collect();
            let phone_like = search
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if phone_like && !digits.is_empty() {
                push(
                    &mut sql,
                    " OR phone LIKE ?",
                    Box::new(format!("+{digits}%")),
                );
            }
            sql.push(')');
        }
        if let Some(source) = self.source {
            push(
                &mut sql,
                " AND source = ?",
                Box::new(source.as_str().to_owned()),
            );
        }
        if let Some(opted_out) = self.opted_out {
            push(&mut sql, " AND opted_out = ?", Box::new(opted_out));
        }
        push(
            &mut sql,
            " AND is_active = ?",
            Box::new(self.is_active.unwrap_or(true)),
        );
        sql
    }
}

fn as_params(params: &[BoxedParam]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// The tenant's contacts matching `filter`, newest first, one keyset page.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    filter: &ContactFilter,
    page: &super::PageRequest,
) -> Result<Vec<Contact>, DbError> {
    let mut params: Vec<BoxedParam> = Vec::new();
    let conditions = filter.conditions(&mut params);
    let mut sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE user_id = $1{conditions}");
    if let Some(before) = &page.before {
        params.push(Box::new(before.clone()));
        sql.push_str(&format!(
            " AND contact_id COLLATE \"C\" < ${}",
            params.len() + 1
        ));
    }
    params.push(Box::new(page.fetch));
    // `COLLATE "C"`: only `contacts_user_active_list_idx` serves this order, never a
    // backward walk of the primary key across all tenants (V16).
    sql.push_str(&format!(
        " ORDER BY contact_id COLLATE \"C\" DESC LIMIT ${}",
        params.len() + 1
    ));
    let user_id = user.as_str().to_owned();
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&user_id];
    all.extend(as_params(&params));
    let rows = client.query(&sql, &all).await?;
    rows.iter().map(Contact::from_row).collect()
}

/// A validated partial update: `None` leaves a field; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub phone: Option<crate::domain::PhoneE164>,
    pub name: Option<Option<ContactName>>,
    pub email: Option<Option<Email>>,
    pub company: Option<Option<ContactCompany>>,
    pub is_active: Option<bool>,
}

/// The outcome of a patch.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per request, moved once"
)]
pub enum PatchOutcome {
    Updated(Contact),
    NotFound,
    /// Another contact of the tenant has this phone.
    PhoneTaken(ContactId),
}

/// Applies a patch to a contact that was not erased.
pub async fn patch(
    client: &impl GenericClient,
    user: &UserId,
    contact_id: &ContactId,
    patch: &ContactPatch,
) -> Result<PatchOutcome, DbError> {
    fn text<T>(field: &Option<Option<T>>, as_str: fn(&T) -> &str) -> (bool, Option<&str>) {
        match field {
            None => (false, None),
            Some(value) => (true, value.as_ref().map(as_str)),
        }
    }
    let (set_name, name) = text(&patch.name, ContactName::as_str);
    let (set_email, email) = text(&patch.email, Email::as_str);
    let (set_company, company) = text(&patch.company, ContactCompany::as_str);
    let sql = format!(
        "UPDATE contacts SET
             phone = COALESCE($3, phone),
             name = CASE WHEN $4 THEN $5 ELSE name END,
             email = CASE WHEN $6 THEN $7 ELSE email END,
             company = CASE WHEN $8 THEN $9 ELSE company END,
             is_active = COALESCE($10, is_active)
         WHERE user_id = $1 AND contact_id = $2 AND erased_at IS NULL
         RETURNING {CONTACT_COLUMNS}"
    );
    let phone = patch.phone.as_ref().map(crate::domain::PhoneE164::as_str);
    let result = client
        .query_opt(
            &sql,
            &[
                &user.as_str(),
                &contact_id.as_str(),
                &phone,
                &set_name,
                &name,
                &set_email,
                &email,
                &set_company,
                &company,
                &patch.is_active,
            ],
        )
        .await;
    match result {
        Ok(Some(row)) => Ok(PatchOutcome::Updated(Contact::from_row(&row)?)),
        Ok(None) => Ok(PatchOutcome::NotFound),
        Err(error) => match DbError::from(error) {
            DbError::UniqueViolation { constraint } if constraint == "contacts_user_phone_key" => {
                let Some(phone) = patch.phone.clone() else {
                    return Err(DbError::UniqueViolation { constraint });
                };
                match find_for_customer(client, user, &CustomerIdentity::Phone(phone)).await? {
                    Some(other) => Ok(PatchOutcome::PhoneTaken(other)),
                    None => Err(DbError::UniqueViolation { constraint }),
                }
            }
            other => Err(other),
        },
    }
}

/// What an erasure removed and what it kept.
#[derive(Debug, Clone)]
pub struct Erasure {
    /// Extractions of the customer whose name, email, company and free texts were erased.
    pub extractions_erased: u64,
    /// Meetings with the customer whose name, email, phone, participants and notes were
    /// erased.
    pub meetings_erased: u64,
}

/// Erases a contact's personal data for a privacy request, in the caller's transaction:
/// phone, channel identity, name, email, company and tags are cleared and the contact is
/// deactivated (`erased_at` set); the name, email, company and free texts (summary,
/// reasoning, requirements) of its extractions, and the customer's name, email, phone,
/// participants and notes of its meetings, are cleared too. An opt-out stays in force
/// (`opt_out_suppressions`, kept by the database's triggers). Kept: the row (its id, counters, opt-out state and times), so campaign
/// history that references it stays whole. `None` when the tenant has no such contact.
pub async fn erase(
    tx: &super::Transaction<'_>,
    user: &UserId,
    contact_id: &ContactId,
) -> Result<Option<Erasure>, DbError> {
    let row = tx
        .query_opt(
            "SELECT COALESCE(phone, customer_id) AS customer_key FROM contacts
             WHERE user_id = $1 AND contact_id = $2 FOR UPDATE",
            &[&user.as_str(), &contact_id.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key: Option<String> = row.try_get("customer_key")?;
    let extractions_erased = match &key {
        Some(key) => {
            tx.execute(
                "UPDATE extractions SET name = NULL, email = NULL, company = NULL,
                     in_detail_summary = NULL, smart_notification = NULL, requirements = NULL,
                     custom_cta = NULL, reasoning = NULL
                 WHERE user_id = $1 AND customer_phone = $2",
                &[&user.as_str(), key],
            )
            .await?
        }
        None => 0,
    };
    let meetings_erased = match &key {
        Some(key) => {
            tx.execute(
                "UPDATE meetings SET customer_name = NULL, customer_email = NULL,
                     customer_phone = NULL, participants = '{}', notes = NULL
                 WHERE user_id = $1 AND customer_phone = $2",
                &[&user.as_str(), key],
            )
            .await?
        }
        None => 0,
    };
    tx.execute(
        "UPDATE contacts SET phone = NULL, platform = NULL, customer_id = NULL, name = NULL,
             email = NULL, company = NULL, tags = '{}', is_active = false,
             erased_at = COALESCE(erased_at, CURRENT_TIMESTAMP)
         WHERE user_id = $1 AND contact_id = $2",
        &[&user.as_str(), &contact_id.as_str()],
    )
    .await?;
    Ok(Some(Erasure {
        extractions_erased,
        meetings_erased,
    }))
}

/// Adds tags to a contact (keeping their order, new ones last) and records `TAG_ADDED` for
/// each tag it did not have, in the caller's transaction. The row lock makes concurrent
/// adds of the same tag record it once. `None` when the tenant has no such contact.
pub async fn add_tags(
    tx: &super::Transaction<'_>,
    user: &UserId,
    contact_id: &ContactId,
    tags: &[crate::domain::Tag],
) -> Result<Option<(Contact, Vec<String>)>, DbError> {
    let current = tx
        .query_opt(
            "SELECT tags FROM contacts WHERE user_id = $1 AND contact_id = $2 AND erased_at IS NULL
             FOR UPDATE",
            &[&user.as_str(), &contact_id.as_str()],
        )
        .await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let mut all: Vec<String> = current.try_get("tags")?;
    let mut added = Vec::new();
    for tag in tags {
        if !all.iter().any(|t| t == tag.as_str()) {
            all.push(tag.as_str().to_owned());
            added.push(tag.as_str().to_owned());
        }
    }
    let sql = format!(
        "UPDATE contacts SET tags = $3 WHERE user_id = $1 AND contact_id = $2
         RETURNING {CONTACT_COLUMNS}"
    );
    let row = if added.is_empty() {
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE user_id = $1 AND contact_id = $2"
        );
        tx.query_one(&sql, &[&user.as_str(), &contact_id.as_str()])
            .await?
    } else {
        tx.query_one(&sql, &[&user.as_str(), &contact_id.as_str(), &all])
            .await?
    };
    let pairs: Vec<(ContactId, String)> = added
        .iter()
        .map(|tag| (contact_id.clone(), tag.clone()))
        .collect();
    super::events::record_tags_added(tx, user, &pairs).await?;
    Ok(Some((Contact::from_row(&row)?, added)))
}

/// Removes a tag from a contact. `None` when the tenant has no such contact.
pub async fn remove_tag(
    client: &impl GenericClient,
    user: &UserId,
    contact_id: &ContactId,
    tag: &crate::domain::Tag,
) -> Result<Option<Contact>, DbError> {
    let sql = format!(
        "UPDATE contacts SET tags = array_remove(tags, $3)
         WHERE user_id = $1 AND contact_id = $2 AND erased_at IS NULL
         RETURNING {CONTACT_COLUMNS}"
    );
    let row = client
        .query_opt(&sql, &[&user.as_str(), &contact_id.as_str(), &tag.as_str()])
        .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

/// Which contacts a bulk tag change applies to.
#[derive(Debug, Clone)]
pub enum BulkTarget {
    /// These contacts (others' and unknown ids match nothing).
    Ids(Vec<ContactId>),
    /// Every contact the filter matches.
    Filter(ContactFilter),
}

/// What a bulk tag change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Contacts the target matched.
    pub matched: u64,
    /// Contacts whose tags changed.
    pub updated: u64,
    /// `TAG_ADDED` events recorded (one per contact and tag added).
    pub tags_added: u64,
}

/// Adds and removes tags on many contacts in one statement (removals win over additions of
/// the same tag), then records `TAG_ADDED` for every tag a contact gained, in one more.
pub async fn bulk_tags(
    tx: &super::Transaction<'_>,
    user: &UserId,
    target: &BulkTarget,
    add: &[crate::domain::Tag],
    remove: &[crate::domain::Tag],
) -> Result<BulkOutcome, DbError> {
    let add: Vec<&str> = add.iter().map(crate::domain::Tag::as_str).collect();
    let remove: Vec<&str> = remove.iter().map(crate::domain::Tag::as_str).collect();
    let mut params: Vec<BoxedParam> = vec![
        Box::new(add.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
        Box::new(remove.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
    ];
    let selection = match target {
        BulkTarget::Ids(ids) => {
            params.push(Box::new(
                ids.iter()
                    .map(|id| id.as_str().to_owned())
                    .collect::<Vec<_>>(),
            ));
            " AND contact_id = ANY($4::text[]) AND erased_at IS NULL".to_owned()
        }
        BulkTarget::Filter(filter) => {
            // The filter's parameters follow $2 and $3.
            let mut filter_params: Vec<BoxedParam> = vec![Box::new(0), Box::new(0)];
            let conditions = filter.conditions(&mut filter_params);
            params.extend(filter_params.into_iter().skip(2));
            format!("{conditions} AND erased_at IS NULL")
        }
    };
    let sql = format!(
        "WITH target AS (
             SELECT contact_id, tags FROM contacts WHERE user_id = $1{selection}
             ORDER BY contact_id FOR UPDATE
         ), changed AS (
             UPDATE contacts c SET tags = ARRAY(
                 SELECT t FROM unnest(target.tags || $2::text[]) WITH ORDINALITY AS u(t, n)
                 WHERE NOT (t = ANY($3::text[]))
                 GROUP BY t ORDER BY min(n))
             FROM target
             WHERE c.contact_id = target.contact_id
               AND (NOT (target.tags @> $2::text[]) OR target.tags && $3::text[])
             RETURNING c.contact_id, ARRAY(
                 SELECT unnest(c.tags) EXCEPT SELECT unnest(target.tags)) AS added
         )
         SELECT m.matched, ch.contact_id, ch.added
         FROM (SELECT count(*) AS matched FROM target) m LEFT JOIN changed ch ON true"
    );
    let user_id = user.as_str().to_owned();
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&user_id];
    all.extend(as_params(&params));
    let rows = tx.query(&sql, &all).await?;
    let mut matched = 0;
    let mut updated = 0;
    let mut pairs = Vec::new();
    for row in &rows {
        matched = u64::try_from(row.try_get::<_, i64>("matched")?).unwrap_or(0);
        let Some(contact_id) = row.try_get::<_, Option<String>>("contact_id")? else {
            continue;
        };
        updated += 1;
        let contact_id = ContactId::from_trusted(contact_id);
        let added: Vec<String> = row.try_get("added")?;
        pairs.extend(added.into_iter().map(|tag| (contact_id.clone(), tag)));
    }
    let tags_added = super::events::record_tags_added(tx, user, &pairs).await?;
    Ok(BulkOutcome {
        matched,
        updated,
        tags_added,
    })
}

/// The tenant's tags on active contacts, with how many contacts carry each, most used
/// first.
pub async fn tag_counts(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<Vec<(String, i64)>, DbError> {
    let rows = client
        .query(
            "SELECT t AS tag, count(*) AS contacts FROM contacts, unnest(tags) AS t
             WHERE user_id = $1 AND is_active
             GROUP BY t ORDER BY count(*) DESC, t",
            &[&user.as_str()],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("tag")?, row.try_get("contacts")?)))
        .collect()
}

/// The tenant's default phone region (`users.default_phone_region`).
pub async fn default_region(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<Option<crate::domain::PhoneRegion>, DbError> {
    let row = client
        .query_opt(
            "SELECT default_phone_region FROM users WHERE user_id = $1",
            &[&user.as_str()],
        )
        .await?;
    let raw: Option<String> = match row {
        Some(row) => row.try_get("default_phone_region")?,
        None => None,
    };
    Ok(raw.and_then(|raw| crate::domain::PhoneRegion::parse(&raw).ok()))
}

/// Sets (or clears) the tenant's default phone region.
pub async fn set_default_region(
    client: &impl GenericClient,
    user: &UserId,
    region: Option<crate::domain::PhoneRegion>,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE users SET default_phone_region = $2 WHERE user_id = $1",
            &[&user.as_str(), &region.map(|r| r.as_str().to_owned())],
        )
        .await?;
    Ok(())
}

/// One valid row of a CSV import.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub phone: crate::domain::PhoneE164,
    pub name: Option<ContactName>,
    pub email: Option<Email>,
    pub company: Option<ContactCompany>,
    pub tags: Vec<crate::domain::Tag>,
}

/// The statement timeout of an import's transaction, in milliseconds.
pub const IMPORT_STATEMENT_TIMEOUT_MS: u32 = 25_000;

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Tags gained, per contact and tag (each reported in a `TAG_ADDED` event listing up to
    /// [`IMPORT_EVENT_CONTACTS`] contacts).
    pub tags_added: u64,
}

impl std::ops::AddAssign for ImportCounts {
    fn add_assign(&mut self, other: Self) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.tags_added += other.tags_added;
    }
}

/// Imports rows (phones unique within `rows`) in the caller's transaction:
/// [`begin_import`], then [`import_batch`]. Merge rules: a new phone is a new contact
/// (`source` IMPORT); for an existing one, a non-empty name, email or company from the file
/// replaces the stored one (a file is a person's entry) and an empty cell keeps it; tags are
/// added, never removed; source, opt-out, activity and counters are never changed. A row
/// that changes nothing is not written (so re-importing a file changes nothing,
/// `updated_at` included). The same statement records `TAG_ADDED` for the tags contacts
/// gained: one event per tag and up to [`IMPORT_EVENT_CONTACTS`] contacts that gained it
/// (`contact_ids`, in file order; `contact_id` null), and answers only the counts.
pub async fn import(
    tx: &super::Transaction<'_>,
    user: &UserId,
    rows: &[ImportRow],
) -> Result<ImportCounts, DbError> {
    begin_import(tx, user).await?;
    import_batch(tx, user, rows).await
}

/// Readies the caller's transaction for an import of many rows, before its first
/// [`import_batch`].
///
/// Imports of one tenant take turns (a transaction-level advisory lock): the tags a contact
/// had before are read in the statement's snapshot, so a second import running at the same
/// time would otherwise count the first one's tags as its own additions and record their
/// events twice (and two files sharing phones in a different order could deadlock).
pub async fn begin_import(tx: &super::Transaction<'_>, user: &UserId) -> Result<(), DbError> {
    // A bulk write of up to 200,000 rows takes longer than the pool's per-statement limit
    // for interactive requests (5 s); this transaction gets 25 s, under API Gateway's 30 s.
    // The planner sees the file's rows but not how they join (no statistics on a CTE): it
    // would sort the rows by phone for merge joins (100,000 collated text comparisons) and,
    // with the cost that follows, JIT-compile the statement (~0.5 s); hash joins in memory
    // take a few milliseconds.
    tx.execute(
        &format!(
            "SELECT set_config('statement_timeout', '{IMPORT_STATEMENT_TIMEOUT_MS}', true),
                    set_config('jit', 'off', true),
                    set_config('enable_mergejoin', 'off', true),
                    set_config('work_mem', '64MB', true),
                    pg_advisory_xact_lock(hashtextextended('contacts.import:' || $1::text, 0))"
        ),
        &[&user.as_str()],
    )
    .await?;
    Ok(())
}

/// Writes one batch of an import (see [`import`]; phones unique across the whole import) in
/// one statement, after [`begin_import`] in the same transaction. A file may be written in
/// several batches, each as soon as it is validated; their counts add up.
pub async fn import_batch(
    tx: &super::Transaction<'_>,
    user: &UserId,
    rows: &[ImportRow],
) -> Result<ImportCounts, DbError> {
    if rows.is_empty() {
        return Ok(ImportCounts::default());
    }
    let columns = ImportColumns::new(rows);
    let per_event = i32::try_from(IMPORT_EVENT_CONTACTS).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            "WITH input AS (
                 SELECT id, phone, name, email, company, n,
                        CASE WHEN tags = '' THEN '{}'::text[] ELSE string_to_array(tags, ';') END AS tags
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                      WITH ORDINALITY AS i(id, phone, name, email, company, tags, n)
             ), prior AS (
                 SELECT c.phone, c.tags FROM contacts c JOIN input i ON c.phone = i.phone
                 WHERE c.user_id = $1
             ), written AS (
                 INSERT INTO contacts AS c (contact_id, user_id, phone, name, email, company, tags, source)
                 SELECT id, $1, phone, name, email, company, tags, 'IMPORT' FROM input
                 ON CONFLICT (user_id, phone) DO UPDATE SET
                     name = COALESCE(EXCLUDED.name, c.name),
                     email = COALESCE(EXCLUDED.email, c.email),
                     company = COALESCE(EXCLUDED.company, c.company),
                     tags = ARRAY(SELECT t FROM unnest(c.tags || EXCLUDED.tags) WITH ORDINALITY AS u(t, n)
                                  GROUP BY t ORDER BY min(n))
                 WHERE c.erased_at IS NULL AND (
                       (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM c.name)
                    OR (EXCLUDED.email IS NOT NULL AND EXCLUDED.email IS DISTINCT FROM c.email)
                    OR (EXCLUDED.company IS NOT NULL AND EXCLUDED.company IS DISTINCT FROM c.company)
                    OR NOT (c.tags @> EXCLUDED.tags))
                 RETURNING c.contact_id, c.phone, (xmax = 0) AS inserted
             ), gained AS (
                 SELECT t.tag, array_agg(w.contact_id ORDER BY i.n) AS contacts
                 FROM written w
                 JOIN input i ON i.phone = w.phone
                 LEFT JOIN prior p ON p.phone = w.phone
                 CROSS JOIN LATERAL unnest(i.tags) AS t(tag)
                 WHERE p.tags IS NULL OR NOT (t.tag = ANY (p.tags))
                 GROUP BY t.tag
             ), events AS (
                 INSERT INTO domain_events (event_id, user_id, event_type, payload, contact_ids)
                 SELECT e.event_id, $1, 'TAG_ADDED', jsonb_build_object('tag', g.tag),
                        g.contacts[e.part * $11 + 1 : (e.part + 1) * $11]
                 FROM unnest($8::text[], $9::int[], $10::text[]) AS e(tag, part, event_id)
                 JOIN gained g ON g.tag = e.tag
                 WHERE e.part * $11 < cardinality(g.contacts)
                 ORDER BY e.event_id
                 RETURNING cardinality(contact_ids) AS pairs
             )
             SELECT (SELECT count(*) FILTER (WHERE inserted) FROM written) AS created,
                    (SELECT count(*) FILTER (WHERE NOT inserted) FROM written) AS updated,
                    (SELECT COALESCE(sum(pairs), 0)::bigint FROM events) AS tags_added",
            &[
                &user.as_str(),
                &columns.ids,
                &columns.phones,
                &columns.names,
                &columns.emails,
                &columns.companies,
                &columns.tags,
                &columns.event_tags,
                &columns.event_parts,
                &columns.event_ids,
                &per_event,
            ],
        )
        .await?;
    let count = |column: &str| -> Result<u64, DbError> {
        Ok(u64::try_from(row.try_get::<_, i64>(column)?).unwrap_or(0))
    };
    let created = count("created")?;
    let updated = count("updated")?;
    Ok(ImportCounts {
        created,
        updated,
        unchanged: (rows.len() as u64).saturating_sub(created + updated),
        tags_added: count("tags_added")?,
    })
}

/// The most contacts one `TAG_ADDED` event of an import lists (`contact_ids`; V19's CHECK
/// holds the database to it): a page of `GET /events` (200 events) and a message on the
/// events queue stay small.
pub const IMPORT_EVENT_CONTACTS: usize = 200;

/// The columns of an import as the statement takes them: one array per column (tags joined
/// by `;`, which a tag cannot contain), and the ids of the `TAG_ADDED` events the batch may
/// record: for each tag, one per part of [`IMPORT_EVENT_CONTACTS`] rows carrying it, made
/// here in file order (ids sort by creation); the statement uses those of the parts that
/// have contacts gaining the tag and drops the others.
struct ImportColumns<'a> {
    ids: Vec<String>,
    phones: Vec<&'a str>,
    names: Vec<Option<&'a str>>,
    emails: Vec<Option<&'a str>>,
    companies: Vec<Option<&'a str>>,
    tags: Vec<String>,
    event_tags: Vec<&'a str>,
    event_parts: Vec<i32>,
    event_ids: Vec<String>,
}

impl<'a> ImportColumns<'a> {
    fn new(rows: &'a [ImportRow]) -> Self {
        let mut columns = Self {
            ids: Vec::with_capacity(rows.len()),
            phones: Vec::with_capacity(rows.len()),
            names: Vec::with_capacity(rows.len()),
            emails: Vec::with_capacity(rows.len()),
            companies: Vec::with_capacity(rows.len()),
            tags: Vec::with_capacity(rows.len()),
            event_tags: Vec::new(),
            event_parts: Vec::new(),
            event_ids: Vec::new(),
        };
        // How many rows carry each tag, in the order the tags first appear.
        let mut carried: Vec<(&'a str, usize)> = Vec::new();
        let mut index: std::collections::HashMap<&'a str, usize> = std::collections::HashMap::new();
        for row in rows {
            columns.ids.push(ContactId::generate().into());
            columns.phones.push(row.phone.as_str());
            columns
                .names
                .push(row.name.as_ref().map(ContactName::as_str));
            columns.emails.push(row.email.as_ref().map(Email::as_str));
            columns
                .companies
                .push(row.company.as_ref().map(ContactCompany::as_str));
            let mut tags = String::new();
            for (n, tag) in row.tags.iter().enumerate() {
                if n > 0 {
                    tags.push(';');
                }
                tags.push_str(tag.as_str());
                let slot = *index.entry(tag.as_str()).or_insert_with(|| {
                    carried.push((tag.as_str(), 0));
                    carried.len() - 1
                });
                carried[slot].1 += 1;
            }
            columns.tags.push(tags);
        }
        for (tag, rows) in carried {
            for part in 0..rows.div_ceil(IMPORT_EVENT_CONTACTS) {
                columns.event_tags.push(tag);
                columns
                    .event_parts
                    .push(i32::try_from(part).unwrap_or(i32::MAX));
                columns
                    .event_ids
                    .push(crate::domain::EventId::generate().into());
            }
        }
        columns
    }
}
