//! Integration tests of the `templates` function: the real router on a database of its own,
//! Meta's Graph API faked over HTTP (wiremock), header media served by another fake.

mod authoring;
mod helpers;
mod sends;
mod stats;
mod submission;
