//! Types that carry meaning: ids, validated values and the enums behind every CHECK
//! constraint. Values are parsed once at the edge (HTTP, webhook, queue) and trusted inside.

pub mod campaign;
mod contact;
mod delivery;
mod enums;
mod ids;
pub mod inbound;
mod lead;
mod phone;
mod text;
mod time_zone;
mod webchat;
mod working_hours;

pub use contact::*;
pub use delivery::{DeliveryOrdered, DeliveryStep};
pub use enums::*;
pub use ids::*;
pub use inbound::{InboundMessage, StatusError, StatusUpdate, customer_key};
pub use lead::*;
pub use phone::{PhoneE164, PhoneParseError};
pub use text::*;
pub use time_zone::{MEETING_MAX_DAYS_AHEAD, TenantTimeZone, parse_instant};
pub use webchat::*;
pub use working_hours::{InvalidWorkingHours, WorkingHours};
