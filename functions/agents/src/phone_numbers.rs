use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    api::{
        ApiError, ApiState, FieldErrors, Json, Page, PageParams, Problem, Query, Tenant,
        openapi::nullable,
    },
    crypto::{SealingKey, SecretKind},
    db::phone_numbers::{self, Channel, ChannelPatch, DeleteOutcome, NewChannel},
    domain::{
        AccessToken, DisplayName, InstagramApi, MetaChannelId, PhoneNumberId, Platform, WabaId,
    },
    meta::{
        errors::CheckFailure,
        graph::{CheckError, Graph},
    },
};
use utoipa::{IntoParams, ToSchema};

use crate::AgentsState;

/// A channel: a WhatsApp number, an Instagram account or a website chat widget. The provider
/// token is never returned; `has_access_token` says whether one is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberResponse {
    /// `pn_…`
    id: String,
    platform: Platform,
    /// WhatsApp: the Cloud API phone-number id; Instagram: the account id; webchat: the
    /// public widget key.
    meta_phone_number_id: String,
    display_name: Option<String>,
    /// The WhatsApp Business Account id (WhatsApp only).
    waba_id: Option<String>,
    /// Instagram only: `instagram_login` (graph.instagram.com) or `facebook_page`
    /// (graph.facebook.com).
    instagram_api: Option<InstagramApi>,
    has_access_token: bool,
    /// The agent linked to this channel, if any.
    agent_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Channel> for PhoneNumberResponse {
    fn from(channel: Channel) -> Self {
        Self {
            id: channel.id.into(),
            platform: channel.platform,
            meta_phone_number_id: channel.meta_phone_number_id,
            display_name: channel.display_name,
            waba_id: channel.waba_id,
            instagram_api: channel.instagram_api,
            has_access_token: channel.has_access_token,
            agent_id: channel.agent_id.map(String::from),
            created_at: channel.created_at,
            updated_at: channel.updated_at,
        }
    }
}

/// A channel to connect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePhoneNumber {
    platform: Platform,
    /// Meta's numeric id (WhatsApp phone-number id, Instagram account id) or, for webchat,
    /// the widget key (letters, digits, `-`, `_`). Unique per platform across all tenants.
    #[schema(max_length = 100)]
    meta_phone_number_id: String,
    /// The provider token; required for WhatsApp and Instagram, absent for webchat. Stored
    /// sealed and never returned.
    #[schema(max_length = 4096)]
    access_token: Option<String>,
    #[schema(max_length = 255)]
    display_name: Option<String>,
    /// The WhatsApp Business Account id; required for WhatsApp (templates live there).
    #[schema(max_length = 100)]
    waba_id: Option<String>,
    /// Instagram only: how the account was connected (default `instagram_login`).
    instagram_api: Option<InstagramApi>,
}

impl CreatePhoneNumber {
    /// The channel to insert, and the plain token to check its ownership with.
    fn validate(self, key: &SealingKey) -> Result<(NewChannel, Option<AccessToken>), ApiError> {
        let platform = self.platform;
        let mut errors = FieldErrors::default();
        let meta_id = errors.check(
            "meta_phone_number_id",
            MetaChannelId::parse(platform, &self.meta_phone_number_id),
        );
        let token = match (platform, self.access_token) {
            (Platform::Webchat, None) => Some(None),
            (Platform::Webchat, Some(_)) => {
                errors.push("access_token", "must be absent for webchat channels");
                None
            }
            (_, None) => {
                errors.push(
                    "access_token",
                    format!("is required for {platform} channels"),
                );
                None
            }
            (_, Some(raw)) => errors
                .check("access_token", AccessToken::parse(&raw))
                .map(Some),
        };
        let waba_id = match (platform, self.waba_id) {
            (Platform::WhatsApp, Some(raw)) => {
                errors.check("waba_id", WabaId::parse(&raw)).map(Some)
            }
            (Platform::WhatsApp, None) => {
                errors.push("waba_id", "is required for whatsapp channels");
                None
            }
            (_, Some(_)) => {
                errors.push("waba_id", "is only for whatsapp channels");
                None
            }
            (_, None) => Some(None),
        };
        let display_name = match self.display_name {
            Some(raw) => errors
                .check("display_name", DisplayName::parse(&raw))
                .map(Some),
            None => Some(None),
        };
        let instagram_api = match (platform, self.instagram_api) {
            (Platform::Instagram, api) => Some(Some(api.unwrap_or(InstagramApi::InstagramLogin))),
            (_, None) => Some(None),
            (_, Some(_)) => {
                errors.push("instagram_api", "is only for instagram channels");
                None
            }
        };
        let (
            Some(meta_phone_number_id),
            Some(token),
            Some(waba_id),
            Some(display_name),
            Some(instagram_api),
        ) = (meta_id, token, waba_id, display_name, instagram_api)
        else {
            return Err(errors.into());
        };
        let new = NewChannel {
            platform,
            meta_phone_number_id,
            sealed_access_token: seal(key, token.as_ref())?,
            display_name,
            waba_id,
            instagram_api,
        };
        Ok((new, token))
    }
}

/// Changes to a channel. Absent fields stay as they are; the platform and Meta id cannot
/// change (connect a new channel instead).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPhoneNumber {
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 255)]
    display_name: Option<Option<String>>,
    /// A new provider token (rotation). Stored sealed.
    #[schema(max_length = 4096)]
    access_token: Option<String>,
    /// WhatsApp channels only; cannot be cleared.
    #[schema(max_length = 100)]
    waba_id: Option<String>,
}

impl PatchPhoneNumber {
    /// The update, and the new plain token (to check ownership with) when there is one.
    fn validate(
        self,
        platform: Platform,
        key: &SealingKey,
    ) -> Result<(ChannelPatch, Option<AccessToken>), ApiError> {
        let mut errors = FieldErrors::default();
        let display_name = match self.display_name {
            None => Some(None),
            Some(None) => Some(Some(None)),
            Some(Some(raw)) => errors
                .check("display_name", DisplayName::parse(&raw))
                .map(|name| Some(Some(name))),
        };
        let token = match (platform, self.access_token) {
            (_, None) => Some(None),
            (Platform::Webchat, Some(_)) => {
                errors.push("access_token", "must be absent for webchat channels");
                None
            }
            (_, Some(raw)) => errors
                .check("access_token", AccessToken::parse(&raw))
                .map(Some),
        };
        let waba_id = match (platform, self.waba_id) {
            (_, None) => Some(None),
            (Platform::WhatsApp, Some(raw)) => errors
                .check("waba_id", WabaId::parse(&raw))
                .map(|id| Some(Some(id))),
            (_, Some(_)) => {
                errors.push("waba_id", "is only for whatsapp channels");
                None
            }
        };
        let (Some(display_name), Some(token), Some(waba_id)) = (display_name, token, waba_id)
        else {
            return Err(errors.into());
        };
        let patch = ChannelPatch {
            display_name,
            sealed_access_token: seal(key, token.as_ref())?,
            waba_id,
            only_if_unchanged: None,
        };
        Ok((patch, token))
    }
}

/// What a channel claims on Meta, checked with the tenant's own token before it is stored.
struct Claim<'a> {
    platform: Platform,
    meta_id: &'a str,
    waba_id: Option<&'a str>,
    instagram_api: Option<InstagramApi>,
    token: &'a str,
}

/// Proves that the token's owner owns the channel, so nobody can claim (and receive the
/// customers of) a number or account that is not theirs:
///
/// - WhatsApp: the number is among the numbers of `waba_id` as the token reads them; then
///   our app is subscribed to the WABA's webhooks, so messages arrive without a manual step.
/// - Instagram: the token reads that very account (on the host `instagram_api` names).
///
/// Meta refusing is a 422 naming the field it refused (with Meta's reason); Meta not
/// answering is a 502. Either way nothing is written.
async fn verify_ownership(graph: &Graph, claim: Claim<'_>) -> Result<(), ApiError> {
    match claim.platform {
        Platform::WhatsApp => {
            let waba = claim
                .waba_id
                .ok_or_else(|| ApiError::invalid("waba_id", "is required for whatsapp channels"))?;
            let found = graph
                .find_waba_phone_number(waba, claim.meta_id, claim.token)
                .await
                .map_err(|e| {
                    refused(
                        e,
                        "waba_id",
                        "read this WhatsApp Business Account's phone numbers",
                    )
                })?;
            if found.is_none() {
                return Err(ApiError::invalid(
                    "meta_phone_number_id",
                    format!(
                        "is not a phone number of WhatsApp Business Account {waba} (as this \
                         access token reads it)"
                    ),
                ));
            }
            graph
                .subscribe_app_to_waba(waba, claim.token)
                .await
                .map_err(|e| {
                    refused(
                        e,
                        "waba_id",
                        "subscribe this app to the WhatsApp Business Account's webhooks",
                    )
                })?;
            tracing::info!("whatsapp number verified and webhooks subscribed");
        }
        Platform::Instagram => {
            let api = claim.instagram_api.unwrap_or(InstagramApi::InstagramLogin);
            let account = graph
                .instagram_account(api, claim.meta_id, claim.token)
                .await
                .map_err(|e| refused(e, "meta_phone_number_id", "read this Instagram account"))?;
            if account.id != claim.meta_id {
                return Err(ApiError::invalid(
                    "meta_phone_number_id",
                    "is not the Instagram account this access token reads",
                ));
            }
        }
        Platform::Webchat => {}
    }
    Ok(())
}

/// Turns a failed Graph check into the answer: which field Meta refused, or 502.
fn refused(error: CheckError, object_field: &str, action: &str) -> ApiError {
    tracing::info!(
        meta.code = error.code,
        meta.subcode = error.subcode,
        meta.fbtrace_id = error.fbtrace_id.as_deref(),
        failure = ?error.failure,
        "Meta refused a channel check"
    );
    let reason = &error.message;
    match error.failure {
        CheckFailure::Unavailable => ApiError::BadGateway(format!(
            "Meta's Graph API could not verify the channel now ({reason}); nothing was saved, \
             retry shortly"
        )),
        CheckFailure::InvalidToken => {
            ApiError::invalid("access_token", format!("was refused by Meta: {reason}"))
        }
        CheckFailure::PermissionDenied => ApiError::invalid(
            "access_token",
            format!("may not {action}; Meta says: {reason}"),
        ),
        CheckFailure::NotFound | CheckFailure::Refused => ApiError::invalid(
            object_field,
            format!("could not be verified (Meta would not let this token {action}): {reason}"),
        ),
    }
}

fn seal(key: &SealingKey, token: Option<&AccessToken>) -> Result<Option<String>, ApiError> {
    token
        .map(|token| key.seal(SecretKind::ChannelAccessToken, token.expose()))
        .transpose()
        .map_err(ApiError::internal)
}

/// Filters and paging for the channel list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPhoneNumbers {
    /// Items per page, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only channels of this platform.
    platform: Option<Platform>,
}

/// Parses a channel id from a path; a malformed id is simply not found.
pub(crate) fn channel_id(raw: &str) -> Result<PhoneNumberId, ApiError> {
    PhoneNumberId::parse(raw).ok_or_else(channel_not_found)
}

pub(crate) fn channel_not_found() -> ApiError {
    ApiError::NotFound("no such phone number (channel)".to_owned())
}

/// Connects a channel.
#[utoipa::path(
    post, path = "/phone-numbers", tag = "channels",
    request_body = CreatePhoneNumber,
    responses(
        (status = 201, body = PhoneNumberResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This platform's id is already connected (by any tenant)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or Meta would not confirm that the access token owns the number (WhatsApp: it is a number of `waba_id`) or account (Instagram); the error names the field and gives Meta's reason", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta could not be reached to verify the channel; nothing was saved", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_phone_number(
    State(state): State<AgentsState>,
    tenant: Tenant,
    Json(body): Json<CreatePhoneNumber>,
) -> Result<(StatusCode, axum::Json<PhoneNumberResponse>), ApiError> {
    let (new, token) = body.validate(&state.api.sealing_key)?;
    if let Some(token) = &token {
        // Before the insert, so a tenant who cannot prove ownership learns nothing, not even
        // whether the id is already connected.
        verify_ownership(
            &state.graph,
            Claim {
                platform: new.platform,
                meta_id: new.meta_phone_number_id.as_str(),
                waba_id: new.waba_id.as_ref().map(WabaId::as_str),
                instagram_api: new.instagram_api,
                token: token.expose(),
            },
        )
        .await?;
    }
    let client = state.api.pool.get().await?;
    let channel = phone_numbers::insert(&client, &tenant.user_id, &new).await?;
    tracing::info!(channel.id = %channel.id, platform = %channel.platform, "channel connected");
    Ok((StatusCode::CREATED, axum::Json(channel.into())))
}

/// The tenant's channels, newest first.
#[utoipa::path(
    get, path = "/phone-numbers", tag = "channels",
    params(ListPhoneNumbers),
    responses(
        (status = 200, body = Page<PhoneNumberResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_phone_numbers(
    State(state): State<ApiState>,
    tenant: Tenant,
    Query(query): Query<ListPhoneNumbers>,
) -> Result<axum::Json<Page<PhoneNumberResponse>>, ApiError> {
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request()?;
    let client = state.pool.get().await?;
    let rows = phone_numbers::list(&client, &tenant.user_id, query.platform, &page).await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |c| c.id.to_string(),
        Into::into,
    )))
}

/// One channel.
#[utoipa::path(
    get, path = "/phone-numbers/{id}", tag = "channels",
    params(("id" = String, Path, description = "`pn_…`")),
    responses(
        (status = 200, body = PhoneNumberResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_phone_number(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<PhoneNumberResponse>, ApiError> {
    let id = channel_id(&id)?;
    let client = state.pool.get().await?;
    let channel = phone_numbers::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(channel_not_found)?;
    Ok(axum::Json(channel.into()))
}

/// Changes a channel's display name, token or WABA id.
#[utoipa::path(
    patch, path = "/phone-numbers/{id}", tag = "channels",
    params(("id" = String, Path, description = "`pn_…`")),
    request_body = PatchPhoneNumber,
    responses(
        (status = 200, body = PhoneNumberResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The channel's token or WABA changed while the new one was being verified", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or Meta would not confirm that the new access token (or WABA) owns the channel", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta could not be reached to verify the change; nothing was saved", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn patch_phone_number(
    State(state): State<AgentsState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<PatchPhoneNumber>,
) -> Result<axum::Json<PhoneNumberResponse>, ApiError> {
    let id = channel_id(&id)?;
    let (current, credentials) = {
        let client = state.api.pool.get().await?;
        // The platform decides which fields apply, and it never changes, so reading it first
        // cannot race with another update.
        let current = phone_numbers::get(&client, &tenant.user_id, &id)
            .await?
            .ok_or_else(channel_not_found)?;
        let credentials = phone_numbers::credentials(&client, &tenant.user_id, &id)
            .await?
            .ok_or_else(channel_not_found)?;
        (current, credentials)
    };
    let (mut patch, new_token) = body.validate(current.platform, &state.api.sealing_key)?;
    let new_waba = patch.waba_id.clone().flatten();
    if current.platform != Platform::Webchat && (new_token.is_some() || new_waba.is_some()) {
        // A new token or WABA must prove ownership again, as on create. The update then
        // applies only if nobody changed the credentials it was verified against meanwhile.
        let token = match &new_token {
            Some(token) => token.expose().to_owned(),
            None => open_token(
                &state.api.sealing_key,
                credentials.sealed_access_token.as_deref(),
            )?,
        };
        let waba = new_waba
            .as_ref()
            .map(|w| w.as_str().to_owned())
            .or_else(|| credentials.waba_id.clone());
        verify_ownership(
            &state.graph,
            Claim {
                platform: current.platform,
                meta_id: &current.meta_phone_number_id,
                waba_id: waba.as_deref(),
                instagram_api: current.instagram_api,
                token: &token,
            },
        )
        .await?;
        patch.only_if_unchanged = Some(credentials);
    }
    let client = state.api.pool.get().await?;
    match phone_numbers::update(&client, &tenant.user_id, &id, &patch).await? {
        Some(channel) => Ok(axum::Json(channel.into())),
        None if patch.only_if_unchanged.is_some()
            && phone_numbers::get(&client, &tenant.user_id, &id)
                .await?
                .is_some() =>
        {
            Err(ApiError::Conflict(
                "the channel's access token or WABA changed while this change was being \
                 verified with Meta; read it again and retry"
                    .to_owned(),
            ))
        }
        None => Err(channel_not_found()),
    }
}

/// Opens a channel's stored token (to verify a new WABA with it).
fn open_token(key: &SealingKey, sealed: Option<&str>) -> Result<String, ApiError> {
    let sealed = sealed.ok_or_else(|| {
        ApiError::invalid(
            "access_token",
            "is required: the channel has no stored token",
        )
    })?;
    key.open(SecretKind::ChannelAccessToken, sealed)
        .map_err(ApiError::internal)
}

/// Disconnects a channel nothing uses any more.
#[utoipa::path(
    delete, path = "/phone-numbers/{id}", tag = "channels",
    params(("id" = String, Path, description = "`pn_…`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An agent, template or campaign still uses the channel", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_phone_number(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = channel_id(&id)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    match phone_numbers::delete(&tx, &tenant.user_id, &id).await? {
        DeleteOutcome::Deleted => {
            tx.commit().await?;
            tracing::info!(channel.id = %id, "channel deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteOutcome::NotFound => Err(channel_not_found()),
        DeleteOutcome::InUse(usage) => Err(ApiError::Conflict(format!(
            "the channel is still used by {} agent(s), {} template(s) and {} campaign(s); \
             remove or relink them first",
            usage.agents, usage.templates, usage.campaigns
        ))),
    }
}
