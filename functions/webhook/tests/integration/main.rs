//! Integration tests of the `webhook` function: signed Meta payloads in, rows and jobs out.

mod clicks;
mod edge;
mod helpers;
mod inbound;
mod signature;
mod statuses;
mod templates;
mod webchat;
