//! Everything two or more functions use: domain types that mirror the schema, database
//! access (one module per aggregate, every tenant-owned query filtered by tenant), the HTTP
//! conventions every API function follows, configuration, sealing of secrets and telemetry.
//!
//! Invariant: this crate never depends on the Lambda runtime. Functions wire it into Lambda;
//! devstack and tests call it directly.

pub mod api;
pub mod aws;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod events;
pub mod google;
pub mod http;
pub mod jobs;
pub mod meta;
pub mod openai;
pub mod outbound;
pub mod scheduler;
pub mod secrets;
pub mod telemetry;
pub mod templates;
pub mod webchat_widget;
