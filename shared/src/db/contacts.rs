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

/// Whether the tenant's contact for this customer opted out (no contact: no).
pub async fn is_opted_out(
    client: &impl GenericClient,
    user: &UserId,
    customer: &CustomerIdentity,
) -> Result<bool, DbError> {
    let sql = format!(
        "SELECT opted_out FROM contacts WHERE user_id = $1 AND {}",
        identity_condition(customer, 2)
    );
    let user_id = user.as_str();
    let values = identity_values(customer);
    let params = with_identity(vec![&user_id], &values);
    let row = client.query_opt(&sql, &params).await?;
    Ok(row
        .map(|r| r.try_get::<_, bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// Counts `count` inbound messages stored for a customer of the agent's tenant, and fills
/// the contact's empty name with the customer's profile name. No contact: nothing.
pub async fn count_received(
    client: &impl GenericClient,
    agent_id: &str,
    customer: &CustomerIdentity,
    count: i32,
    profile_name: Option<&str>,
) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE contacts SET total_messages_received = total_messages_received + $2,
             name = COALESCE(name, $3)
         WHERE user_id = (SELECT user_id FROM agents WHERE agent_id = $1) AND {}",
        identity_condition(customer, 4)
    );
    let values = identity_values(customer);
    let params = with_identity(vec![&agent_id, &count, &profile_name], &values);
    client.execute(&sql, &params).await?;
    Ok(())
}

/// Counts one message sent to a customer and when. No contact: nothing.
pub async fn count_sent(
    client: &impl GenericClient,
    user_id: &str,
    customer: &CustomerIdentity,
) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE contacts SET total_messages_sent = total_messages_sent + 1,
             last_contacted_at = CURRENT_TIMESTAMP
         WHERE user_id = $1 AND {}",
        identity_condition(customer, 2)
    );
    let values = identity_values(customer);
    let params = with_identity(vec![&user_id], &values);
    client.execute(&sql, &params).await?;
    Ok(())
}
