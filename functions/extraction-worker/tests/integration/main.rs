//! Integration tests of the extraction worker: real PostgreSQL, OpenAI as an HTTP fake that
//! records what it was sent.

mod extraction;
mod helpers;
mod sweep;
mod sync;
