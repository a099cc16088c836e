//! Integration tests of the `agents` function: the real router, a real PostgreSQL database
//! per test, tokens signed like the identity provider's.

mod account;
mod admin;
mod agents;
mod auth;
mod helpers;
mod ownership;
mod phone_numbers;
mod relink;
