//! WhatsApp Business Accounts and their numbers: a number's details and throughput (`GET
//! /{phone_number_id}`), the numbers of a WABA (`GET /{waba_id}/phone_numbers`, paged), and
//! subscribing our app to a WABA's webhooks (`POST /{waba_id}/subscribed_apps`).

use secrecy::SecretString;
use serde::Deserialize;

use super::{Graph, GraphError, transport::Success};

/// A phone number of a WhatsApp Business Account (`GET /{waba_id}/phone_numbers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BusinessPhoneNumber {
    /// The Cloud API phone-number id (what webhooks and sends name).
    pub id: String,
    /// E.g. `+1 555-555-5555`.
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
}

/// A number's details (`GET /{phone_number_id}?fields=…`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumberDetails {
    pub id: String,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    pub quality_rating: Option<String>,
    pub throughput: Option<Throughput>,
    /// `TIER_250`, `TIER_1K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`.
    pub messaging_limit_tier: Option<String>,
}

/// `throughput`: `{"level": "STANDARD" | "HIGH" | "NOT_APPLICABLE"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Throughput {
    pub level: Option<String>,
}

/// The fields read of a number.
pub const PHONE_NUMBER_FIELDS: &str =
    "display_phone_number,verified_name,quality_rating,throughput,messaging_limit_tier";

/// One page of a Graph list.
#[derive(Debug, Clone, Deserialize)]
struct GraphPage<T> {
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Clone, Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    /// Present only when there is a next page.
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Cursors {
    after: Option<String>,
}

/// Numbers asked for per page of a WABA's phone numbers, and pages read at most: a WABA
/// holds a handful of numbers (Meta's limit is in the tens), so 10 pages is generous.
const PHONE_NUMBERS_PAGE: &str = "100";
const MAX_PAGES: usize = 10;

impl Graph {
    /// Reads a number's display number, verified name, quality rating, throughput level and
    /// messaging limit tier.
    pub async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<PhoneNumberDetails, GraphError> {
        let url = self.facebook_url(phone_number_id);
        let request = self
            .authorized(reqwest::Method::GET, &url, token)
            .query(&[("fields", PHONE_NUMBER_FIELDS)]);
        self.call(request).await
    }

    /// Finds `phone_number_id` among the numbers of the WhatsApp Business Account
    /// `waba_id`, reading them with `token`: `None` when the WABA has no such number. Proves
    /// both that the token may read the WABA and that the number is the WABA's.
    pub async fn find_waba_phone_number(
        &self,
        waba_id: &str,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<Option<BusinessPhoneNumber>, GraphError> {
        let url = self.facebook_url(&format!("{waba_id}/phone_numbers"));
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("fields", "id,display_phone_number,verified_name"),
                ("limit", PHONE_NUMBERS_PAGE),
            ];
            if let Some(cursor) = after.as_deref() {
                query.push(("after", cursor));
            }
            let request = self
                .authorized(reqwest::Method::GET, &url, token)
                .query(&query);
            let page: GraphPage<BusinessPhoneNumber> = self.call(request).await?;
            if let Some(found) = page.data.into_iter().find(|n| n.id == phone_number_id) {
                return Ok(Some(found));
            }
            after = page
                .paging
                .filter(|paging| paging.next.is_some())
                .and_then(|paging| paging.cursors)
                .and_then(|cursors| cursors.after);
            if after.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// Subscribes our app to the webhooks of the WhatsApp Business Account `waba_id`
    /// (`POST /{waba_id}/subscribed_apps`), so its numbers' messages reach our webhook
    /// without a step in Meta's dashboard. Subscribing twice is harmless.
    pub async fn subscribe_app_to_waba(
        &self,
        waba_id: &str,
        token: &SecretString,
    ) -> Result<(), GraphError> {
        let url = self.facebook_url(&format!("{waba_id}/subscribed_apps"));
        let request = self.authorized(reqwest::Method::POST, &url, token);
        let answer: Success = self.call(request).await?;
        if answer.success {
            Ok(())
        } else {
            Err(GraphError::unsuccessful())
        }
    }
}
