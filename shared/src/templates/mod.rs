//! WhatsApp message templates as the tenant authors them: the model ([`model`]), the rules
//! checked before anything reaches Meta ([`validate`]), the one builder of Meta's payloads,
//! for creation and for sends ([`payload`]), and the mapping of Meta's template events onto
//! the stored status ([`status`]).
//!
//! Invariant: nothing here does I/O. The `templates` function and the webhook call these
//! pure functions; the database is `db::templates`, Meta is `meta::graph::templates`.

pub mod model;
pub mod payload;
pub mod status;
pub mod validate;

#[cfg(test)]
mod tests;

pub use model::{Button, Header, Location, TemplateContent, TemplateDraft, TextPart, Variable};
pub use validate::{Violation, validate};
