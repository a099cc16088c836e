//! Meta: the webhook's signature and payloads (WhatsApp Cloud API, Instagram messaging).

pub mod signature;
pub mod webhook;
