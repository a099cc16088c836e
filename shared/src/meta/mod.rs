//! Meta: the webhook's signature and payloads (WhatsApp Cloud API, Instagram messaging), the
//! Graph API client that sends, and the table that classifies its errors.

pub mod errors;
pub mod graph;
pub mod signature;
pub mod webhook;
